"""Link-analyzer pipeline: concurrency under upstream latency, and Gemini calls under repeats.

In-process (``LinkAnalyzerService`` on a real Redis, a fake origin and a fake Gemini on
loopback), nothing cached at the start of each measurement.

* ``concurrency``: N uncached analyses of N distinct pages started at once, the origin answering
  each page after L seconds (on ``--hosts`` loopback ports, i.e. as many sites: the per-host
  politeness limits stay at their production defaults). Goal: every one finishes within 1.2 L.
  Baseline: the same analyses one after another (``--seq`` of them, scaled to N).
* ``dedup``: R requests, of which 40 % fetch a URL whose content repeats another's (a different
  URL, same page), all started at once. Goal: Gemini calls == distinct contents. Peer: the same
  pipeline with the analysis cache and the fleet lease switched off, i.e. one call per request.

* ``--workers 1 2``: the same N analyses through the queue, run by that many ``haetae worker``
  processes (``run_worker_processes``), each with N/workers job slots; latency from the moment
  the N jobs are enqueued (all at once) to each job's completion, both on the Redis clock.

    python benchmarks/link_analyzer_pipeline.py [--n 100] [--latency 0.5] [--gemini-latency 0]
                                                [--hosts 100]
                                                [--seq 10] [--requests 200] [--repeat 0.4]
                                                [--workers 1 2] [--skip-dedup] [--uvloop]
                                                [--sdk-httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import signal
import time
from typing import Any

import psutil
from link_analyzer_fakes import (
    analyzer_config,
    redis_client,
    redis_url,
    remote_fakes,
    summary_ms,
    table,
)

from link_analyzer.queue import JobStatus, Priority
from link_analyzer.runner import run_worker_processes
from link_analyzer.service import LinkAnalyzerService
from link_analyzer.ssrf import AddressPolicy
from link_analyzer.urls import canonicalize

LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])


class NoAnalysisCache:
    """Wraps the real cache but never remembers an analysis: the naive peer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_analysis(self, content_hash: str) -> None:
        return None

    async def put_analysis(self, content_hash: str, value: Any, ttl_s: float) -> None:
        return None


class NoLease:
    async def acquire(self, content_hash: str, ttl_s: float) -> str:
        return "x"

    async def release(self, content_hash: str, token: str) -> None:
        return None


def sdk_over_httpx() -> None:
    """The analyzer before: the SDK sending through an ``httpx.AsyncClient`` (``--sdk-httpx``),
    to compare with the aiohttp session it uses now in one sitting."""
    import httpx
    from google import genai
    from google.genai import types

    from link_analyzer.gemini import GeminiAnalyzer

    def build(self: GeminiAnalyzer) -> genai.Client:
        s = self.settings
        options = types.HttpOptions(
            api_version=s.api_version,
            base_url=s.base_url,
            timeout=int(s.timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
            httpx_async_client=httpx.AsyncClient(timeout=s.timeout_s),
        )
        return genai.Client(api_key=s.api_key, http_options=options)

    GeminiAnalyzer._build = build  # type: ignore[method-assign]


async def _timed(service: LinkAnalyzerService, url: str) -> float:
    t0 = time.perf_counter()
    report = await service.analyzer.analyze(url)
    assert report["ai"]["status"] == "done", report["ai"]
    return time.perf_counter() - t0


def upstream_latency(args: argparse.Namespace) -> float:
    """L: what one analysis waits on upstreams, the origin's answer then Gemini's."""
    return float(args.latency + args.gemini_latency)


def upstream_ms(args: argparse.Namespace) -> str:
    return (
        f"{upstream_latency(args) * 1000:g} (origin {args.latency * 1000:g} + Gemini "
        f"{args.gemini_latency * 1000:g})"
    )


async def concurrency(url: str, args: argparse.Namespace) -> list[list[Any]]:
    # The blocking pool the control plane builds (redis-py's default pool fails commands with
    # "Too many connections" once 100 analyses hold its connections: section 3 of the report).
    client = redis_client(url, blocking=True)
    await client.flushdb()
    async with remote_fakes(
        origin_latency=args.latency, gemini_latency=args.gemini_latency, hosts=args.hosts
    ) as up:
        cfg = analyzer_config(up.gemini_url)
        async with LinkAnalyzerService(cfg, client, policy=LOOPBACK) as service:
            await _timed(service, up.url(10**6))  # warm pools and parsers
            t0 = time.perf_counter()
            seq = [await _timed(service, up.url(10**5 + i, host=i)) for i in range(args.seq)]
            seq_total = (time.perf_counter() - t0) * args.n / args.seq
            t0, c0 = time.perf_counter(), time.process_time()
            each = await asyncio.gather(
                *(_timed(service, up.url(i, host=i)) for i in range(args.n))
            )
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await client.aclose()
    s, c = summary_ms(seq), summary_ms(each)
    bound = 1.2 * upstream_latency(args)
    print(
        f"concurrency: {args.n} uncached analyses, upstream latency L={upstream_ms(args)} ms, "
        f"{args.hosts} hosts; slowest {max(each) * 1000:.0f} ms, bound 1.2 L = "
        f"{bound * 1000:.0f} ms: {'PASS' if max(each) <= bound else 'FAIL'}; "
        f"sequential/concurrent wall ratio {seq_total / wall:.1f}x; "
        f"CPU {cpu * 1000 / args.n:.1f} ms per analysis (one event loop)"
    )
    return [
        [f"sequential ({args.seq}, scaled to {args.n})", seq_total, s["p50"], s["p95"], s["max"]],
        [f"concurrent ({args.n} at once)", wall, c["p50"], c["p95"], c["max"]],
    ]


async def _wait_done(service: LinkAnalyzerService, ids: list[str], t0_ms: int) -> list[float]:
    """Seconds from ``t0_ms`` (Redis clock) to each job's completion (its ``updated_ms`` when
    done, on the same clock). Polled every 100 ms with one pipelined HGET per pending job, so
    neither the poll period nor the poller's CPU (this process shares the cores with the
    workers) shapes the figures."""
    pending, done = list(ids), {}
    while pending:
        await asyncio.sleep(0.1)
        pipe = service.redis.pipeline(transaction=False)
        for jid in pending:
            pipe.hget(service.queue.keys.job(jid), "status")
        states = await pipe.execute()
        still = []
        for jid, raw in zip(pending, states, strict=True):
            state = raw.decode() if isinstance(raw, bytes) else raw
            if state != JobStatus.DONE:
                assert state in (JobStatus.QUEUED, JobStatus.ACTIVE), (jid, state)
                still.append(jid)
                continue
            view = await service.queue.status(jid)
            assert view is not None and view.result is not None
            assert view.result["ai"]["status"] == "done", view.result["ai"]
            done[jid] = (view.updated_ms - t0_ms) / 1000
            assert view.attempts == 1, (jid, view.attempts, view.error)
        pending = still
    return [done[j] for j in ids]


async def concurrency_workers(url: str, args: argparse.Namespace, workers: int) -> list[Any]:
    """The same N analyses through the queue, run by ``workers`` worker processes
    (``haetae worker --processes``: ``run_worker_processes``), each taking at most N/workers
    jobs at once; all N jobs enqueued at once, as ``POST /api/v1/analyze/async`` does."""
    client = redis_client(url, blocking=True)
    await client.flushdb()
    async with remote_fakes(
        origin_latency=args.latency, gemini_latency=args.gemini_latency, hosts=args.hosts
    ) as up:
        per_worker = -(-args.n // workers)
        cfg = analyzer_config(
            up.gemini_url, queue={"worker_concurrency": per_worker, "worker_metrics_port": None}
        )
        ctx = mp.get_context("spawn")
        fleet = ctx.Process(target=run_worker_processes, args=(cfg, url, workers))
        fleet.start()
        try:
            async with LinkAnalyzerService(cfg, client, policy=LOOPBACK) as service:
                q = cfg.queue

                async def enqueue(target: str) -> str:
                    got = await service.queue.enqueue(
                        canonicalize(target).key,
                        {"url": target},
                        priority=Priority.HIGH,
                        max_attempts=q.max_attempts,
                        timeout_s=q.job_timeout_s,
                    )
                    return got.job_id

                async def redis_ms() -> int:
                    sec, usec = await client.time()
                    return int(sec) * 1000 + int(usec) // 1000

                # Warm-up: every worker process imports, connects and answers a few. One job at
                # a time: idle workers wait on BLPOP, which Redis serves in turn.
                for i in range(3 * workers):
                    await _wait_done(service, [await enqueue(up.url(10**6 + i))], 0)
                procs = psutil.Process(fleet.pid).children(recursive=True)
                cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
                t0_ms = await redis_ms()
                t0 = time.perf_counter()
                ids = await asyncio.gather(*(enqueue(up.url(i, host=i)) for i in range(args.n)))
                each = await _wait_done(service, list(ids), t0_ms)
                wall = time.perf_counter() - t0
                cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - cpu0
        finally:
            if fleet.pid is not None:
                os.kill(fleet.pid, signal.SIGTERM)
            await asyncio.get_running_loop().run_in_executor(None, fleet.join, 30)
            if fleet.is_alive():
                fleet.kill()
    await client.aclose()
    c = summary_ms(each)
    bound = 1.2 * upstream_latency(args)
    print(
        f"queued, {workers} worker process(es) x {per_worker} slots: slowest "
        f"{max(each) * 1000:.0f} ms, bound {bound * 1000:.0f} ms: "
        f"{'PASS' if max(each) <= bound else 'FAIL'}; workers' CPU {cpu * 1000 / args.n:.1f} ms "
        "per analysis"
    )
    return [f"queued, {workers} worker process(es)", wall, c["p50"], c["p95"], c["max"]]


async def dedup(
    url: str, args: argparse.Namespace, *, naive: bool, blocking: bool
) -> tuple[int, int, float]:
    client = redis_client(url, blocking=blocking)
    await client.flushdb()
    rng = random.Random(5)
    distinct = round(args.requests * (1 - args.repeat))
    # Every content once (its first URL), then repeats of random contents under new URLs.
    plan = [(c, 0) for c in range(distinct)]
    plan += [(rng.randrange(distinct), v) for v in range(1, args.requests - distinct + 1)]
    rng.shuffle(plan)
    async with remote_fakes(
        origin_latency=args.dedup_latency, gemini_latency=0.05, hosts=args.hosts
    ) as up:
        cfg = analyzer_config(up.gemini_url)
        async with LinkAnalyzerService(cfg, client, policy=LOOPBACK) as service:
            if naive:
                service.analyzer.cache = NoAnalysisCache(service.cache)
                service.analyzer.lease = NoLease()  # type: ignore[assignment]
            t0 = time.perf_counter()
            await asyncio.gather(*(_timed(service, up.url(c, v, host=c)) for c, v in plan))
            wall = time.perf_counter() - t0
        calls = await up.gemini_calls()
    await client.aclose()
    return distinct, calls, wall


async def main(args: argparse.Namespace) -> None:
    with redis_url() as url:
        rows = [] if args.skip_in_process else await concurrency(url, args)
        rows += [await concurrency_workers(url, args, w) for w in args.workers]
        if rows:
            print(table(["mode", "wall s", "p50 ms", "p95 ms", "max ms"], rows))
            print()
        if args.skip_dedup:
            return
        runs = [
            ("naive (no analysis cache, no lease)", True, True),
            ("link_analyzer, default pool (control plane before)", False, False),
            ("link_analyzer, blocking pool (control plane now)", False, True),
        ]
        results = [(name, *await dedup(url, args, naive=n, blocking=b)) for name, n, b in runs]
    distinct = results[0][1]
    naive_calls = results[0][2]
    for name, _, calls, _ in results[1:]:
        print(
            f"dedup [{name}]: Gemini calls {calls} (goal == {distinct} distinct): "
            f"{'PASS' if calls == distinct else 'FAIL'}; naive/ours {naive_calls / calls:.2f}x"
        )
    print(
        table(
            ["pipeline", "requests", "distinct contents", "Gemini calls", "wall s"],
            [[name, args.requests, d, calls, wall] for name, d, calls, wall in results],
        )
    )
    print(f"({args.requests} requests at once, {args.repeat:.0%} of them repeat content)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5, help="origin latency, seconds")
    parser.add_argument(
        "--gemini-latency",
        type=float,
        default=0.0,
        help="fake Gemini's latency, seconds (L = origin + Gemini; real calls take seconds)",
    )
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--seq", type=int, default=10, help="sequential baseline sample size")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeat", type=float, default=0.4)
    parser.add_argument("--dedup-latency", type=float, default=0.05)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[],
        help="also run the N analyses through the queue with this many worker processes "
        "(e.g. --workers 1 2)",
    )
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-dedup", action="store_true")
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="run this process on uvloop (pip install -e '.[speedups]'; worker processes keep "
        "asyncio's loop, hiredis is used everywhere once installed)",
    )
    parser.add_argument(
        "--sdk-httpx",
        action="store_true",
        help="in-process analyses with the SDK over httpx, as before (the comparison baseline)",
    )
    parsed = parser.parse_args()
    if parsed.sdk_httpx:
        sdk_over_httpx()
    if parsed.uvloop:
        import uvloop

        uvloop.run(main(parsed))
    else:
        asyncio.run(main(parsed))
