"""Remote write in: samples per second one control-plane process decodes and durably commits
from Prometheus remote-write requests, with the agent-report path as the baseline in the same
run, on the same database (docs/performance.md, "Remote write in").

Modes:

* ``decode``: snappy + WriteRequest -> the internal form only, with our hand-written decoder and,
  for comparison, with the protobuf library's generated classes (upb) doing the same job;
* ``remote write``: snappy bodies -> ``RemoteWriteDecoder.decode`` -> ``Ingestor.submit``
  (group commit, whose ``prepare`` drops late samples), exactly the route's path, for batches
  of 500 (Prometheus 2.42's ``max_samples_per_send``), 2,000 and 10,000 samples. One sender
  (one virtual agent) with S concurrent shards, each sending its next batch once the last is
  acknowledged, one sample per series per batch, as Prometheus's shards do;
* ``agent reports`` (the baseline): the same samples as JSON agent reports, ``decode_report`` ->
  ``Ingestor.submit`` (what benchmarks/ingest_throughput.py measures);
* ``--http``: the real app factory on loopback, a separate process posting the snappy bodies
  with an agent token, as Prometheus does.

The clock stops when every submit (or response) has returned: every sample is committed. One
warm-up round that creates the series is not timed.

    python benchmarks/remote_write_in.py [--dsn DSN] [--series 50000] [--rounds 10] [--http]

Without ``--dsn`` / ``HAETAE_BENCH_POSTGRES_DSN`` an embedded PostgreSQL is started in a
temporary directory; a scratch database is created for the run and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from multiprocessing.queues import Queue
from pathlib import Path

import asyncpg
import cramjam
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ingest_throughput import (  # noqa: E402
    ENROLMENT,
    Result,
    count_samples,
    create_scratch_db,
    drop_db,
    free_port,
    print_table,
)

from control_plane.config import (  # noqa: E402
    ControlPlaneConfig,
    IngestConfig,
    PostgresConfig,
    RetentionConfig,
)
from control_plane.ingest import Ingestor, Sample, decode_report  # noqa: E402
from control_plane.ingest.gc_policy import ingest_gc_policy  # noqa: E402
from control_plane.ingest.prompb import remote_pb2 as pb  # noqa: E402
from control_plane.ingest.remote_write import RemoteWriteDecoder  # noqa: E402
from control_plane.maintenance import Maintenance  # noqa: E402
from control_plane.store import create_pool  # noqa: E402
from control_plane.telemetry import ControlPlaneMetrics  # noqa: E402

INTERVAL_S = 15.0  # Prometheus's usual scrape interval between a series' samples
SOURCE = "bench-prometheus"
MODES = ("cpu", "user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice", "guest")
MAX_INFLATED = 64 * 1024 * 1024


def series_labels(i: int) -> dict[str, str]:
    """A node_exporter-like series (6 labels with __name__); ``i`` picks a distinct one."""
    return {
        "__name__": "node_cpu_seconds_total",
        "cpu": str(i % 64),
        "instance": f"host-{i // 640:05d}.example.internal:9100",
        "job": "node",
        "mode": MODES[i % 10],
        "shard_series": str(i),
    }


def write_body(series: range, ts_ms: int, k: int) -> bytes:
    req = pb.WriteRequest()
    for i in series:
        ts = req.timeseries.add()
        for name, value in series_labels(i).items():
            ts.labels.add(name=name, value=value)
        ts.samples.add(value=float(k * 1000 + i) + 0.25, timestamp=ts_ms)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def report_body(series: range, ts: float, k: int) -> bytes:
    samples = []
    for i in series:
        labels = series_labels(i)
        name = labels.pop("__name__")
        samples.append({"name": name, "labels": labels, "value": float(k * 1000 + i) + 0.25})
    return orjson.dumps(
        {"report_id": str(uuid.uuid4()), "collected_at": ts, "samples": samples, "seq": k}
    )


def shard_ranges(total: int, batch: int) -> list[range]:
    return [range(s, min(s + batch, total)) for s in range(0, total, batch)]


def bench_config(args: argparse.Namespace) -> IngestConfig:
    # One sender holds every series here: the limits are exactly the run's series (a double
    # count in the live-series budget would show as a refused batch).
    n = max(args.series, max(args.batches))
    return IngestConfig(
        max_samples_per_report=max(10_000, max(args.batches)),
        max_new_series_per_report=n,
        max_new_series_per_agent_hour=n,
        max_series_per_agent=n,
        max_series_global=n,
    )


# -- decode only ---------------------------------------------------------------------------------


LabelMemo = dict[tuple[tuple[str, str], ...], tuple[str, dict[str, str], str]]


def upb_decode(body: bytes, memo: LabelMemo) -> list[Sample]:
    """The same job through the protobuf library (with the label sets remembered too)."""
    req = pb.WriteRequest()
    req.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    out = []
    for ts in req.timeseries:
        key = tuple((label.name, label.value) for label in ts.labels)
        entry = memo.get(key)
        if entry is None:
            labels = {n: v for n, v in key if n != "__name__"}
            name = dict(key)["__name__"]
            entry = memo[key] = (
                name,
                labels,
                orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode(),
            )
        for s in ts.samples:
            out.append(Sample(entry[0], entry[1], entry[2], s.timestamp / 1000, s.value))
    return out


def bench_decode(args: argparse.Namespace) -> list[Result]:
    results = []
    now = time.time()
    for batch in args.batches:
        rounds = max(3, 200_000 // batch)
        bodies = [
            write_body(range(batch), int((now - 60 + k) * 1000), k) for k in range(rounds + 1)
        ]
        ours = RemoteWriteDecoder(bench_config(args), max_inflated_bytes=MAX_INFLATED)
        memo: LabelMemo = {}
        decoders: list[tuple[str, Callable[[bytes], object]]] = [
            ("decode: ours (hand-written)", partial(ours.decode, source=SOURCE, now=now)),
            ("decode: protobuf library (upb)", partial(upb_decode, memo=memo)),
        ]
        for name, decode in decoders:
            decode(bodies[0])  # warm: label sets seen
            t0 = time.perf_counter()
            for b in bodies[1:]:
                decode(b)
            elapsed = time.perf_counter() - t0
            results.append(Result(f"{name}, batch {batch}", rounds * batch, elapsed))
    return results


# -- through the ingestor ------------------------------------------------------------------------


Bodies = list[list[bytes]]  # per shard, per round (round 0 is the untimed warm-up)


def remote_write_bodies(args: argparse.Namespace, batch: int) -> Bodies:
    start = time.time() - (args.rounds + 1) * INTERVAL_S
    return [
        [write_body(r, int((start + k * INTERVAL_S) * 1000), k) for k in range(args.rounds + 1)]
        for r in shard_ranges(args.series, batch)
    ]


def report_bodies(args: argparse.Namespace, batch: int) -> Bodies:
    start = time.time() - (args.rounds + 1) * INTERVAL_S
    return [
        [report_body(r, start + k * INTERVAL_S, k) for k in range(args.rounds + 1)]
        for r in shard_ranges(args.series, batch)
    ]


async def run_remote_write(pool: asyncpg.Pool, args: argparse.Namespace, bodies: Bodies) -> float:
    """The route's path for every shard's batches; returns the seconds the timed rounds took."""
    cfg = bench_config(args)
    decoder = RemoteWriteDecoder(cfg, max_inflated_bytes=MAX_INFLATED)
    async with Ingestor(pool, cfg, RetentionConfig(), ControlPlaneMetrics()) as ing:

        async def shard(s: int, k: int) -> None:
            written = decoder.decode(bodies[s][k], SOURCE, now=time.time())
            await ing.submit(written.report)  # late samples are dropped inside the flush

        return await timed_rounds(pool, args, len(bodies), shard)


async def run_reports(pool: asyncpg.Pool, args: argparse.Namespace, bodies: Bodies) -> float:
    """The agent-report path for the same samples (one report per shard and round)."""
    cfg = bench_config(args)
    async with Ingestor(pool, cfg, RetentionConfig(), ControlPlaneMetrics()) as ing:

        async def agent(s: int, k: int) -> None:
            await ing.submit(decode_report(bodies[s][k], SOURCE, now=time.time(), cfg=cfg))

        return await timed_rounds(pool, args, len(bodies), agent)


async def timed_rounds(
    pool: asyncpg.Pool,
    args: argparse.Namespace,
    senders: int,
    send: Callable[[int, int], Awaitable[None]],
) -> float:
    """Round 0 (creates the series) untimed, then every sender sends its rounds, each once the
    last is acknowledged, all senders at once; checks every sample was stored."""

    async def sender(s: int, rounds: range) -> None:
        for k in rounds:
            await send(s, k)

    await pool.execute("TRUNCATE samples, series, ingested_reports")
    # Every run starts from the same state: the previous runs' WAL flushed (a checkpoint
    # falling inside a run made whichever mode ran first look twice as fast).
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await pool.execute("CHECKPOINT")
    await asyncio.gather(*(sender(s, range(1)) for s in range(senders)))
    before = await count_samples(pool)
    t0 = time.perf_counter()
    await asyncio.gather(*(sender(s, range(1, args.rounds + 1)) for s in range(senders)))
    elapsed = time.perf_counter() - t0
    stored = await count_samples(pool) - before
    assert stored == args.series * args.rounds, (stored, args.series * args.rounds)
    return elapsed


# -- through HTTP ----------------------------------------------------------------------------------


def http_load(
    url: str, args: argparse.Namespace, batch: int, out: Queue[tuple[float, int]]
) -> None:
    """In a child process: enrol the virtual agent, warm up, then every shard posts its batches."""
    import aiohttp

    async def main() -> tuple[float, int]:
        shards = shard_ranges(args.series, batch)
        start = time.time() - (args.rounds + 1) * INTERVAL_S
        bodies = [
            [write_body(r, int((start + k * INTERVAL_S) * 1000), k) for k in range(args.rounds + 1)]
            for r in shards
        ]
        async with aiohttp.ClientSession(
            url, connector=aiohttp.TCPConnector(limit=len(shards))
        ) as http:
            async with http.post(
                "/api/v1/agents/enroll",
                json={"agent_id": SOURCE},
                headers={"Authorization": f"Bearer {ENROLMENT}"},
            ) as resp:
                assert resp.status == 201, await resp.text()
                token = (await resp.json())["token"]
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            }

            async def shard(s: int, ks: range) -> int:
                sent = 0
                for k in ks:
                    while True:
                        async with http.post(
                            "/api/v1/write", data=bodies[s][k], headers=headers
                        ) as resp:
                            if resp.status == 503:  # overloaded: Prometheus backs off and retries
                                await asyncio.sleep(0.05)
                                continue
                            assert resp.status == 204, await resp.text()
                            sent += len(shards[s])
                            break
                return sent

            await asyncio.gather(*(shard(s, range(1)) for s in range(len(shards))))
            t0 = time.perf_counter()
            counts = await asyncio.gather(
                *(shard(s, range(1, args.rounds + 1)) for s in range(len(shards)))
            )
            return time.perf_counter() - t0, sum(counts)

    out.put(asyncio.run(main()))


async def run_http(dsn: str, pool: asyncpg.Pool, args: argparse.Namespace, batch: int) -> Result:
    from aiohttp import web
    from pydantic import SecretStr

    from control_plane.app import create_app
    from haetae.config import load

    await pool.execute("TRUNCATE samples, series, ingested_reports, api_tokens, agents CASCADE")
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
                "ingest": bench_config(args),
            }
        )
        runner = web.AppRunner(create_app(config), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            ctx = mp.get_context("spawn")
            out: Queue[tuple[float, int]] = ctx.Queue()
            proc = ctx.Process(
                target=http_load, args=(f"http://127.0.0.1:{port}", args, batch, out)
            )
            proc.start()
            loop = asyncio.get_running_loop()
            elapsed, sent = await loop.run_in_executor(None, out.get)
            await loop.run_in_executor(None, proc.join)
        finally:
            await runner.cleanup()
    assert sent == args.series * args.rounds, sent
    return Result(
        f"http: POST /api/v1/write, batch {batch} (client in another process)", sent, elapsed
    )


# -- main ----------------------------------------------------------------------------------------


async def bench(server_dsn: str, args: argparse.Namespace) -> None:
    name, dsn = await create_scratch_db(server_dsn)
    try:
        with ingest_gc_policy():
            decoded = bench_decode(args)
            results = await bench_ingest(dsn, args)
    finally:
        await drop_db(server_dsn, name)
    print_table(decoded, decoded[0])
    baseline = next(r for r in results if r.mode.startswith("baseline"))
    print("(each row: the best of the runs in brackets)")
    print_table(results, baseline)


async def bench_ingest(dsn: str, args: argparse.Namespace) -> list[Result]:
    """Every mode ``--repeat`` times, interleaved and rotated (this VM is shared: load moves
    between runs); each mode's row is its best run, all runs listed."""
    pool = await create_pool(dsn, PostgresConfig(pool_min_size=2, pool_max_size=10))
    try:
        await Maintenance(pool, RetentionConfig()).run_once()
        await pool.execute("INSERT INTO agents (agent_id) VALUES ($1)", SOURCE)
        modes: list[tuple[str, Callable[[], Awaitable[float]]]] = []
        base = args.baseline_batch
        baseline = report_bodies(args, base)
        modes.append(
            (
                f"baseline: agent reports (JSON), {base}/report, {len(baseline)} agents",
                partial(run_reports, pool, args, baseline),
            )
        )
        for batch in args.batches:
            bodies = remote_write_bodies(args, batch)
            modes.append(
                (
                    f"remote write: batch {batch}, {len(bodies)} shards",
                    partial(run_remote_write, pool, args, bodies),
                )
            )
        runs: dict[str, list[float]] = {name: [] for name, _ in modes}
        for i in range(args.repeat):
            # Each repeat starts with another mode, so none always runs first.
            for name, run in modes[i % len(modes) :] + modes[: i % len(modes)]:
                runs[name].append(await run())
        total = args.series * args.rounds
        results = []
        for name, seconds in runs.items():
            rates = ", ".join(f"{total / s / 1000:.0f}k" for s in seconds)
            results.append(Result(f"{name} [{rates}]", total, min(seconds)))
        if args.http:
            for batch in args.batches:
                results.append(await run_http(dsn, pool, args, batch))
        return results
    finally:
        await pool.close()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("HAETAE_BENCH_POSTGRES_DSN"))
    parser.add_argument(
        "--series", type=int, default=50_000, help="series (one sample each a round)"
    )
    parser.add_argument("--rounds", type=int, default=10, help="measured batches per shard")
    parser.add_argument("--batches", type=int, nargs="+", default=[500, 2000, 10_000])
    parser.add_argument(
        "--baseline-batch", type=int, default=2000, help="samples per agent report (baseline)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode, interleaved")
    parser.add_argument("--http", action="store_true", help="also measure through HTTP")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
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
