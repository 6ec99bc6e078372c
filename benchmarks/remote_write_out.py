"""Remote write out: what the outbox costs ingest, the forwarder's sustained rate and its lag,
into a real VictoriaMetrics (Debian ``victoria-metrics``).

Three measurements, each against a peer in the same run:

* **ingest cost**: the ingest benchmark's load (N agents x reports of S samples, decode +
  ``Ingestor.submit``) with and without the outbox stage in the commit transaction, alternated.
* **drain rate**: an outbox of every sample of the ingest runs is forwarded by one forwarder
  (claim, series labels, encode, snappy, POST, delete) until empty. Peer: a hand-written remote
  write from Python of the same samples straight to VictoriaMetrics (same encoder and
  concurrency, no outbox, no PostgreSQL), the figure the issue quotes (~1.2M samples/s).
* **lag under steady load**: agents report at a fixed rate while the forwarder runs in the same
  process; the lag gauge (age of the oldest commit not yet acknowledged) is read every 0.25 s.

    python benchmarks/remote_write_out.py [--dsn DSN] [--agents 50] [--series 1000]
                                          [--reports 10] [--rate 50000] [--steady-s 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ingest_throughput import (  # noqa: E402
    INTERVAL_S,
    agent_name,
    create_scratch_db,
    drop_db,
    make_body,
    prepare,
)

from control_plane.config import (  # noqa: E402
    ForwardConfig,
    IngestConfig,
    PostgresConfig,
    RetentionConfig,
)
from control_plane.forward import Forwarder, ForwardMetrics, RemoteWriteClient, batching, payload  # noqa: E402  # noqa: E402
from control_plane.forward.labels import SeriesLabels  # noqa: E402
from control_plane.forward.outbox import append  # noqa: E402
from control_plane.forward.wire import SampleEncoder  # noqa: E402
from control_plane.ingest import Ingestor, decode_report  # noqa: E402
from control_plane.ingest.gc_policy import ingest_gc_policy  # noqa: E402
from control_plane.store import create_pool  # noqa: E402
from control_plane.telemetry import ControlPlaneMetrics  # noqa: E402

VM_BINARY = "/usr/bin/victoria-metrics"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def victoria_metrics() -> AsyncIterator[str]:
    """A single-node VictoriaMetrics in a temporary directory; yields its base URL."""
    with tempfile.TemporaryDirectory(prefix="haetae-bench-vm-") as tmp:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            VM_BINARY,
            f"-storageDataPath={tmp}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-loggerLevel=ERROR",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as s:
                for _ in range(300):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with s.get(f"{base}/health") as r:
                            if r.status == 200:
                                break
                    await asyncio.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            await proc.wait()


async def vm_series_samples(base: str) -> int:
    """Rows VictoriaMetrics reports ingested (its own counter)."""
    async with aiohttp.ClientSession() as s, s.get(f"{base}/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith('vm_rows_inserted_total{type="promremotewrite"}'):
                return int(float(line.split()[-1]))
    return 0


# -- ingest with and without the outbox ------------------------------------------------------


async def ingest_run(pool: asyncpg.Pool, args: argparse.Namespace, *, outbox: bool) -> float:
    """samples/s of one ingest run (the warm-up report of each agent untimed)."""
    start = time.time() - (args.reports + 1) * INTERVAL_S
    bodies = [
        [make_body(a, k, args.series, start) for k in range(args.reports + 1)]
        for a in range(args.agents)
    ]
    cfg = IngestConfig()
    async with Ingestor(pool, cfg, RetentionConfig(), ControlPlaneMetrics()) as ing:
        if outbox:
            ing.transaction_stages.append(append)

        async def agent(a: int, ks: range) -> None:
            for k in ks:
                await ing.submit(
                    decode_report(bodies[a][k], agent_name(a), now=time.time(), cfg=cfg)
                )

        await asyncio.gather(*(agent(a, range(1)) for a in range(args.agents)))
        t0 = time.perf_counter()
        await asyncio.gather(*(agent(a, range(1, args.reports + 1)) for a in range(args.agents)))
        elapsed = time.perf_counter() - t0
    return args.agents * args.reports * args.series / elapsed


async def storage_per_sample(pool: asyncpg.Pool) -> tuple[float, float]:
    """Bytes a sample takes in ``samples`` (heap + index, all partitions) and in the outbox."""
    await pool.execute("VACUUM ANALYZE samples")
    await pool.execute("VACUUM ANALYZE forward_outbox")
    samples_bytes = await pool.fetchval(
        "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits"
        " WHERE inhparent = 'samples'::regclass"
    )
    stored = await pool.fetchval("SELECT count(*) FROM samples")
    outbox_bytes = await pool.fetchval("SELECT pg_total_relation_size('forward_outbox')")
    queued = await outbox_samples(pool)
    return int(samples_bytes) / max(1, stored), int(outbox_bytes) / max(1, queued)


async def outbox_samples(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT coalesce(sum(sample_count), 0) FROM forward_outbox"))


async def outbox_drained(pool: asyncpg.Pool) -> None:
    """Returns once the outbox is empty (polled: the forwarder signals nothing outside)."""
    while await pool.fetchval("SELECT EXISTS (SELECT 1 FROM forward_outbox)"):  # noqa: ASYNC110
        await asyncio.sleep(0.01)


# -- draining the outbox, and the hand-written peer ------------------------------------------


def forward_config(args: argparse.Namespace, url: str) -> ForwardConfig:
    return ForwardConfig(
        url=url,
        max_samples_per_request=args.request_samples,
        max_in_flight=args.in_flight,
        poll_interval_s=0.25,
    )


async def drain(pool: asyncpg.Pool, args: argparse.Namespace, url: str) -> tuple[int, float]:
    total = await outbox_samples(pool)
    cfg = forward_config(args, url)
    async with RemoteWriteClient(cfg) as client:
        forwarder = Forwarder(pool, cfg, ForwardMetrics(), client)
        t0 = time.perf_counter()
        await forwarder.start()
        await outbox_drained(pool)
        elapsed = time.perf_counter() - t0
        await forwarder.stop()
    return total, elapsed


async def hand_written(
    pool: asyncpg.Pool, args: argparse.Namespace, url: str, payloads: list[bytes]
) -> tuple[int, float]:
    """The peer: the same samples (decoded beforehand, untimed) encoded and POSTed straight
    from memory, ``in_flight`` requests at a time; like the forwarder it reads and encodes the
    series' labels once (timed)."""
    chunks = [payload.decode(p) for p in payloads]
    series = {sid for c in chunks for sid in c.series_ids}
    cfg = forward_config(args, url)
    sent = 0
    async with RemoteWriteClient(cfg) as client:
        t0 = time.perf_counter()
        labels = await SeriesLabels(pool, {}).encoded(series)
        # One generator of request bodies shared by the senders (next() is synchronous).
        bodies = batching.requests(chunks, labels, args.request_samples, SampleEncoder())

        async def sender() -> None:
            nonlocal sent
            for request in bodies:
                await client.send(request.body)
                sent += request.samples

        await asyncio.gather(*(sender() for _ in range(args.in_flight)))
        elapsed = time.perf_counter() - t0
    return sent, elapsed


# -- lag under a steady load -----------------------------------------------------------------


async def steady(pool: asyncpg.Pool, args: argparse.Namespace, url: str) -> dict[str, float]:
    """Agents report every second (args.rate samples/s in all) for args.steady_s seconds while
    the forwarder runs; returns lag percentiles and the time to drain after the last report."""
    agents = max(1, args.rate // args.series)
    cfg = IngestConfig()
    fcfg = forward_config(args, url)
    lags: list[float] = []
    metrics = ControlPlaneMetrics()
    fmetrics = ForwardMetrics(metrics.registry)
    async with (
        Ingestor(pool, cfg, RetentionConfig(), metrics) as ing,
        RemoteWriteClient(fcfg) as client,
    ):
        forwarder = Forwarder(pool, fcfg, fmetrics, client)
        ing.transaction_stages.append(append)
        ing.commit_listeners.append(forwarder.wake)
        await forwarder.start()
        stop_at = time.monotonic() + args.steady_s

        async def agent(a: int) -> None:
            k = 0
            # Spread the agents over the second, as real ones are.
            await asyncio.sleep(a / agents)
            while time.monotonic() < stop_at:
                t = time.monotonic()
                body = make_body(a, k, args.series, time.time() - k * INTERVAL_S)  # now
                await ing.submit(decode_report(body, agent_name(a), now=time.time(), cfg=cfg))
                k += 1
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t)))

        async def watch() -> None:
            while time.monotonic() < stop_at:
                await forwarder.refresh()
                lags.append(fmetrics.lag._value.get())
                await asyncio.sleep(0.25)

        await asyncio.gather(watch(), *(agent(a) for a in range(agents)))
        t0 = time.perf_counter()
        await outbox_drained(pool)
        drain_s = time.perf_counter() - t0
        sent = fmetrics.samples.labels("sent")._value.get()
        await forwarder.stop()
    lags.sort()
    return {
        "agents": agents,
        "sent": sent,
        "p50": statistics.median(lags),
        "p95": lags[int(0.95 * (len(lags) - 1))],
        "max": lags[-1],
        "drain_s": drain_s,
    }


async def bench(server_dsn: str, args: argparse.Namespace) -> None:
    name, dsn = await create_scratch_db(server_dsn)
    pool = await create_pool(dsn, PostgresConfig(pool_min_size=2, pool_max_size=12))
    try:
        await prepare(pool, args.agents)
        with ingest_gc_policy():
            rates: dict[bool, list[float]] = {False: [], True: []}
            for outbox in (False, True) * args.pairs:
                await pool.execute("TRUNCATE samples, ingested_reports, forward_outbox")
                rates[outbox].append(await ingest_run(pool, args, outbox=outbox))
            sizes = await storage_per_sample(pool)
            rows = await pool.fetch("SELECT payload FROM forward_outbox ORDER BY id")
            payloads = [r["payload"] for r in rows]
            async with victoria_metrics() as base:
                url = f"{base}/api/v1/write"
                forwarded, forward_s = await drain(pool, args, url)
                peer_sent, peer_s = await hand_written(pool, args, url, payloads)
                await pool.execute("TRUNCATE samples, ingested_reports, forward_outbox")
                lag = await steady(pool, args, url)
                received = await vm_series_samples(base)
    finally:
        await pool.close()
        await drop_db(server_dsn, name)
    off, on = rates[False], rates[True]
    print()
    print(f"ingest, {args.agents} agents x {args.reports} reports x {args.series} samples:")
    print(f"  without the outbox: {', '.join(f'{r:,.0f}' for r in off)} samples/s")
    print(f"  with the outbox:    {', '.join(f'{r:,.0f}' for r in on)} samples/s")
    print(f"  ratio (mean): {statistics.mean(on) / statistics.mean(off):.2f}x")
    print(
        f"drain ({args.in_flight} in flight, {args.request_samples} samples a request): "
        f"forwarder {forwarded:,} samples in {forward_s:.2f} s = {forwarded / forward_s:,.0f}/s; "
        f"hand-written peer {peer_sent:,} in {peer_s:.2f} s = {peer_sent / peer_s:,.0f}/s; "
        f"ratio {forwarded / forward_s / (peer_sent / peer_s):.2f}x"
    )
    print(
        f"steady {lag['agents']} agents x {args.series} samples/s for {args.steady_s:.0f} s: "
        f"lag p50 {lag['p50']:.2f} s, p95 {lag['p95']:.2f} s, max {lag['max']:.2f} s; "
        f"drained {lag['drain_s']:.2f} s after the last report; {lag['sent']:,.0f} sent "
        f"({lag['sent'] / args.steady_s:,.0f}/s achieved)"
    )
    print(f"VictoriaMetrics counted {received:,} remote-write rows in all")
    print(
        f"PostgreSQL bytes a sample: samples table + index {sizes[0]:.1f}, "
        f"outbox row payload + overhead {sizes[1]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("HAETAE_BENCH_POSTGRES_DSN"))
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--series", type=int, default=1000, help="samples per report")
    parser.add_argument("--reports", type=int, default=10, help="measured reports per agent")
    parser.add_argument("--pairs", type=int, default=2, help="ingest runs with/without outbox")
    parser.add_argument(
        "--request-samples", type=int, default=ForwardConfig().max_samples_per_request
    )
    parser.add_argument("--in-flight", type=int, default=ForwardConfig().max_in_flight)
    parser.add_argument("--rate", type=int, default=50_000, help="steady load, samples/s")
    parser.add_argument("--steady-s", type=float, default=20.0)
    args = parser.parse_args()
    if shutil.which(VM_BINARY) is None:
        sys.exit(f"{VM_BINARY} is missing: apt-get install victoria-metrics")
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
