"""Ingest throughput: samples per second durably persisted by one control-plane process.

Compared in the same run, on the same database, with a named naive peer: the same rows written
by asyncpg ``executemany`` INSERTs (one transaction per report, same concurrency). The peer is
favoured: its rows are pre-decoded and its series ids known, and it does no deduplication.

Modes, each with N concurrent simulated agents, each sending its next report as soon as the
previous one is acknowledged (so the figure is capacity, not a configured rate):

* ``ingestor``: report bodies (JSON) -> ``decode_report`` -> ``Ingestor.submit`` (group commit:
  idempotency records + binary COPY + agents update, one transaction per flush). The clock stops
  when every submit has returned, i.e. every sample is committed.
* ``http`` (``--http``): the real app factory on loopback; the agents run in a separate process
  posting gzip'd bodies with their own tokens, as the real agent does.

One warm-up round (creating the series) is excluded from the timing of each mode.

    python benchmarks/ingest_throughput.py [--dsn DSN] [--agents 50] [--series 1000]
                                           [--reports 10] [--http] [--replicate]

Without ``--dsn`` / ``HAETAE_BENCH_POSTGRES_DSN`` an embedded PostgreSQL is started in a
temporary directory. A scratch database is created for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gzip
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from control_plane.config import (  # noqa: E402
    ControlPlaneConfig,
    IngestConfig,
    PostgresConfig,
    RetentionConfig,
)
from control_plane.ingest import Ingestor, decode_report  # noqa: E402
from control_plane.ingest.gc_policy import ingest_gc_policy  # noqa: E402
from control_plane.ingest.replicate import SampleReplicator  # noqa: E402
from control_plane.ingest.windows import SeriesWindows  # noqa: E402
from control_plane.maintenance import Maintenance  # noqa: E402
from control_plane.store import apply_migrations, create_pool  # noqa: E402
from control_plane.telemetry import ControlPlaneMetrics  # noqa: E402

INTERVAL_S = 10.0  # simulated collection interval between an agent's reports


@dataclass
class Result:
    mode: str
    samples: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.samples / self.seconds


def agent_name(i: int) -> str:
    return f"bench-{i:04d}"


def make_body(agent: int, k: int, series: int, start: float) -> bytes:
    """Report ``k`` of one agent: ``series`` samples of a few realistic-looking metrics."""
    samples = [
        {
            "name": f"app_http_requests_{j % 10}_total",
            "labels": {"path": f"/api/v1/items/{j}", "code": "200", "method": "GET"},
            "value": float(k * 1000 + j),
        }
        for j in range(series)
    ]
    doc = {
        "report_id": str(uuid.uuid4()),
        "seq": k,
        "collected_at": start + k * INTERVAL_S,
        "samples": samples,
        "collectors": [{"name": "app", "ok": True, "duration_s": 0.01, "samples": series}],
    }
    return orjson.dumps(doc)


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def create_scratch_db(server_dsn: str) -> tuple[str, str]:
    name = f"haetae_bench_{os.getpid()}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = with_database(server_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return name, dsn


async def drop_db(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def prepare(pool: asyncpg.Pool, agents: int) -> None:
    await Maintenance(pool, RetentionConfig()).run_once()
    await pool.executemany(
        "INSERT INTO agents (agent_id) VALUES ($1) ON CONFLICT DO NOTHING",
        [(agent_name(i),) for i in range(agents)],
    )


async def count_samples(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM samples"))


# -- mode 1: decode + submit -------------------------------------------------------------


async def run_ingestor(
    pool: asyncpg.Pool,
    args: argparse.Namespace,
    start: float,
    *,
    redis_url: str | None = None,
    peer: bool = False,
) -> Result:
    """With ``redis_url`` the commits are also published to a replication stream
    (ingest/replicate.py; the clock also waits for the publishing to finish); with ``peer`` a
    second replica in this process applies them to windows of its own (the follower's cost)."""
    bodies = [
        [make_body(a, k, args.series, start) for k in range(args.reports + 1)]
        for a in range(args.agents)
    ]
    cfg = IngestConfig(flush_max_samples=args.flush_max_samples)
    async with contextlib.AsyncExitStack() as stack:
        ing = await stack.enter_async_context(
            Ingestor(pool, cfg, RetentionConfig(), ControlPlaneMetrics())
        )
        label = ""
        replicas: list[SampleReplicator] = []
        if redis_url is not None:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(redis_url)
            stack.push_async_callback(client.aclose)
            stream = f"bench:samples:{uuid.uuid4().hex[:8]}"
            replicas.append(SampleReplicator(client, pool, ing.windows, stream=stream))
            label = ", replicated"
            if peer:
                own = SeriesWindows(window_seconds=cfg.window_seconds, max_points=4096)
                replicas.append(SampleReplicator(client, pool, own, stream=stream))
                label = ", replicated + a peer applying"
            for r in replicas:
                await r.start()
                stack.push_async_callback(r.stop)
            ing.sample_listeners.append(replicas[0].publish)
            if peer:
                await wait_for(lambda: bool(replicas[0].peers and replicas[1].peers))

        async def agent(a: int, ks: range) -> None:
            for k in ks:
                report = decode_report(bodies[a][k], agent_name(a), now=time.time(), cfg=cfg)
                await ing.submit(report)

        await asyncio.gather(*(agent(a, range(1)) for a in range(args.agents)))  # warm-up
        before = await count_samples(pool)
        t0 = time.perf_counter()
        await asyncio.gather(*(agent(a, range(1, args.reports + 1)) for a in range(args.agents)))
        if replicas:
            published = replicas[0].metrics.published
            total = args.agents * (args.reports + 1) * args.series
            await wait_for(lambda: published._value.get() >= total)
            if peer:
                applied = replicas[1].metrics.applied
                await wait_for(lambda: applied._value.get() >= total)
        elapsed = time.perf_counter() - t0
    stored = await count_samples(pool) - before
    expected = args.agents * args.reports * args.series
    assert stored == expected, (stored, expected)
    return Result(f"ingestor: decode+submit{label}, {args.agents} agents", stored, elapsed)


async def wait_for(check: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("replication did not finish in time")
        await asyncio.sleep(0.005)


# -- the peer: executemany INSERTs ---------------------------------------------------------


async def run_baseline(pool: asyncpg.Pool, args: argparse.Namespace, start: float) -> Result:
    """The same reports through the same decoding, then one ``executemany`` INSERT per report
    (asyncpg pipelines it; one transaction each), N agents concurrently."""
    ids = {
        (r["agent_id"], r["name"], r["labels_key"]): r["series_id"]
        for r in await pool.fetch("SELECT series_id, agent_id, name, labels_key FROM series")
    }
    reports = max(1, min(args.reports, args.baseline_reports))
    bodies = [
        [make_body(a, k, args.series, start) for k in range(1, reports + 1)]
        for a in range(args.agents)
    ]
    cfg = IngestConfig()
    await pool.execute("TRUNCATE samples")

    async def agent(a: int) -> None:
        agent_id = agent_name(a)
        for body in bodies[a]:
            report = decode_report(body, agent_id, now=time.time(), cfg=cfg)
            rows = [
                (ids[(agent_id, s.name, s.labels_key)], _utc(s.ts), s.value) for s in report.samples
            ]
            async with pool.acquire() as conn:
                await conn.executemany(
                    "INSERT INTO samples (series_id, ts, value) VALUES ($1, $2, $3)", rows
                )

    t0 = time.perf_counter()
    await asyncio.gather(*(agent(a) for a in range(args.agents)))
    elapsed = time.perf_counter() - t0
    stored = await count_samples(pool)
    assert stored == args.agents * reports * args.series, stored
    await pool.execute("TRUNCATE samples")
    return Result(f"peer: decode + executemany INSERT, {args.agents} agents", stored, elapsed)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


# -- mode 2: through HTTP --------------------------------------------------------------------

ENROLMENT = "bench-enrolment-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_load(
    url: str, agents: int, series: int, reports: int, start: float, out: Queue[tuple[float, int]]
) -> None:
    """Runs in a child process: enrol, warm up, then post every report; reports timings."""
    import aiohttp

    async def main() -> tuple[float, int]:
        bodies = [
            [gzip.compress(make_body(a, k, series, start), 5) for k in range(reports + 1)]
            for a in range(agents)
        ]
        conn = aiohttp.TCPConnector(limit=agents)
        async with aiohttp.ClientSession(url, connector=conn) as http:
            tokens = []
            for a in range(agents):
                async with http.post(
                    "/api/v1/agents/enroll",
                    json={"agent_id": agent_name(a)},
                    headers={"Authorization": f"Bearer {ENROLMENT}"},
                ) as resp:
                    assert resp.status == 201, await resp.text()
                    tokens.append((await resp.json())["token"])

            async def agent(a: int, ks: range) -> int:
                accepted = 0
                for k in ks:
                    while True:
                        async with http.post(
                            f"/api/v1/agents/{agent_name(a)}/reports",
                            data=bodies[a][k],
                            headers={
                                "Authorization": f"Bearer {tokens[a]}",
                                "Content-Type": "application/json",
                                "Content-Encoding": "gzip",
                            },
                        ) as resp:
                            if resp.status == 503:  # overloaded: back off like the agent
                                await asyncio.sleep(0.05)
                                continue
                            assert resp.status == 200, await resp.text()
                            accepted += (await resp.json())["accepted"]
                            break
                return accepted

            await asyncio.gather(*(agent(a, range(1)) for a in range(agents)))
            t0 = time.perf_counter()
            counts = await asyncio.gather(*(agent(a, range(1, reports + 1)) for a in range(agents)))
            return time.perf_counter() - t0, sum(counts)

    out.put(asyncio.run(main()))


async def run_http(dsn: str, pool: asyncpg.Pool, args: argparse.Namespace, start: float) -> Result:
    from aiohttp import web
    from pydantic import SecretStr

    from control_plane.app import create_app
    from haetae.config import load

    await pool.execute("TRUNCATE samples, series, ingested_reports")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        base = load(ControlPlaneConfig, "")
        config = base.model_copy(
            update={
                "postgres": base.postgres.model_copy(update={"dsn": SecretStr(dsn)}),
                "auth": base.auth.model_copy(
                    update={
                        "enrolment_token": SecretStr(ENROLMENT),
                        "bootstrap_token_file": Path(tmp) / "admin.token",
                    }
                ),
            }
        )
        runner = web.AppRunner(create_app(config), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            ctx = mp.get_context("spawn")
            out: Queue[tuple[float, int]] = ctx.Queue()
            proc = ctx.Process(
                target=http_load,
                args=(
                    f"http://127.0.0.1:{port}",
                    args.agents,
                    args.series,
                    args.reports,
                    start,
                    out,
                ),
            )
            proc.start()
            loop = asyncio.get_running_loop()
            elapsed, accepted = await loop.run_in_executor(None, out.get)
            await loop.run_in_executor(None, proc.join)
        finally:
            await runner.cleanup()
    expected = args.agents * args.reports * args.series
    assert accepted == expected, (accepted, expected)
    return Result(f"http: gzip POST, {args.agents} agents (separate process)", accepted, elapsed)


# -- main ------------------------------------------------------------------------------------


def print_table(results: list[Result], baseline: Result) -> None:
    print()
    print(f"{'mode':<58} {'samples':>9} {'seconds':>8} {'samples/s':>11} {'vs peer':>8}")
    for r in results:
        print(
            f"{r.mode:<58} {r.samples:>9} {r.seconds:>8.2f} {r.rate:>11,.0f} "
            f"{r.rate / baseline.rate:>7.2f}x"
        )
    print()


async def bench(server_dsn: str, args: argparse.Namespace) -> None:
    name, dsn = await create_scratch_db(server_dsn)
    try:
        # Every mode runs under the GC policy the control plane's ingest_ctx applies.
        with ingest_gc_policy():
            results, baseline = await bench_modes(dsn, args)
    finally:
        await drop_db(server_dsn, name)
    print_table(results, baseline)


async def bench_modes(dsn: str, args: argparse.Namespace) -> tuple[list[Result], Result]:
    pool = await create_pool(dsn, PostgresConfig(pool_min_size=2, pool_max_size=10))
    try:
        await prepare(pool, args.agents)
        start = time.time() - (args.reports + 1) * INTERVAL_S
        ingest = await run_ingestor(pool, args, start)
        baseline = await run_baseline(pool, args, start)
        results = [baseline, ingest]
        if args.replicate:
            with contextlib.ExitStack() as stack:
                redis_url = args.redis or stack.enter_context(embedded_redis())
                for peer in (False, True):
                    await pool.execute("TRUNCATE samples, series, ingested_reports")
                    start = time.time() - (args.reports + 1) * INTERVAL_S
                    results.append(
                        await run_ingestor(pool, args, start, redis_url=redis_url, peer=peer)
                    )
        if args.http:
            start = time.time() - (args.reports + 1) * INTERVAL_S
            results.append(await run_http(dsn, pool, args, start))
        return results, baseline
    finally:
        await pool.close()


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    from haetae.embedded import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="haetae-bench-redis-") as tmp:
        server = EmbeddedRedis(Path(tmp), persist=False)
        try:
            yield server.start()
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("HAETAE_BENCH_POSTGRES_DSN"))
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--series", type=int, default=1000, help="samples per report")
    parser.add_argument("--reports", type=int, default=10, help="measured reports per agent")
    parser.add_argument(
        "--baseline-reports", type=int, default=3, help="reports per agent for the slow peer"
    )
    parser.add_argument("--flush-max-samples", type=int, default=IngestConfig().flush_max_samples)
    parser.add_argument("--http", action="store_true", help="also measure through HTTP")
    parser.add_argument(
        "--replicate",
        action="store_true",
        help="also measure with replication to other replicas (a Redis Stream)",
    )
    parser.add_argument(
        "--redis",
        default=os.environ.get("HAETAE_BENCH_REDIS_URL"),
        help="Redis for --replicate (default: an embedded one)",
    )
    args = parser.parse_args()
    if args.dsn:
        asyncio.run(bench(args.dsn, args))
        return
    from haetae.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="haetae-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", cleanup="delete", database="postgres")
        dsn = server.start()
        try:
            asyncio.run(bench(dsn, args))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
