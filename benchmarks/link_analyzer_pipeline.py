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

    python benchmarks/link_analyzer_pipeline.py [--n 100] [--latency 0.5] [--hosts 100]
                                                [--seq 10] [--requests 200] [--repeat 0.4]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

from link_analyzer_fakes import (
    analyzer_config,
    redis_client,
    redis_url,
    remote_fakes,
    summary_ms,
    table,
)

from link_analyzer.service import LinkAnalyzerService
from link_analyzer.ssrf import AddressPolicy

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


async def _timed(service: LinkAnalyzerService, url: str) -> float:
    t0 = time.perf_counter()
    report = await service.analyzer.analyze(url)
    assert report["ai"]["status"] == "done", report["ai"]
    return time.perf_counter() - t0


async def concurrency(url: str, args: argparse.Namespace) -> list[list[Any]]:
    client = redis_client(url)
    await client.flushdb()
    async with remote_fakes(origin_latency=args.latency, hosts=args.hosts) as up:
        cfg = analyzer_config(up.gemini_url)
        async with LinkAnalyzerService(cfg, client, policy=LOOPBACK) as service:
            await _timed(service, up.url(10**6))  # warm pools and parsers
            t0 = time.perf_counter()
            seq = [await _timed(service, up.url(10**5 + i, host=i)) for i in range(args.seq)]
            seq_total = (time.perf_counter() - t0) * args.n / args.seq
            t0 = time.perf_counter()
            each = await asyncio.gather(
                *(_timed(service, up.url(i, host=i)) for i in range(args.n))
            )
            wall = time.perf_counter() - t0
    await client.aclose()
    s, c = summary_ms(seq), summary_ms(each)
    bound = 1.2 * args.latency
    print(
        f"concurrency: {args.n} uncached analyses, origin latency L={args.latency * 1000:g} ms, "
        f"{args.hosts} hosts; slowest {max(each) * 1000:.0f} ms, bound 1.2 L = "
        f"{bound * 1000:.0f} ms: {'PASS' if max(each) <= bound else 'FAIL'}; "
        f"sequential/concurrent wall ratio {seq_total / wall:.1f}x"
    )
    return [
        [f"sequential ({args.seq}, scaled to {args.n})", seq_total, s["p50"], s["p95"], s["max"]],
        [f"concurrent ({args.n} at once)", wall, c["p50"], c["p95"], c["max"]],
    ]


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
                service.analyzer.lease = NoLease()
            t0 = time.perf_counter()
            await asyncio.gather(*(_timed(service, up.url(c, v, host=c)) for c, v in plan))
            wall = time.perf_counter() - t0
        calls = await up.gemini_calls()
    await client.aclose()
    return distinct, calls, wall


async def main(args: argparse.Namespace) -> None:
    with redis_url() as url:
        rows = await concurrency(url, args)
        print(table(["mode", "wall s", "p50 ms", "p95 ms", "max ms"], rows))
        print()
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
    parser.add_argument("--latency", type=float, default=0.5, help="origin latency L, seconds")
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--seq", type=int, default=10, help="sequential baseline sample size")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeat", type=float, default=0.4)
    parser.add_argument("--dedup-latency", type=float, default=0.05)
    asyncio.run(main(parser.parse_args()))
