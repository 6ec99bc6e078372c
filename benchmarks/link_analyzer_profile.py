"""Where the CPU of one uncached analysis goes, stage by stage (no profiler overhead).

``LinkAnalyzerService`` in-process on a real Redis, the fake origin (no latency, 100 ports) and
the fake Gemini in a child process. After a warm-up, ``--n`` analyses run one after another
(so the CPU between a stage's entry and exit is that stage's own), each stage wrapped to sum
``time.process_time()``; the rest is the pipeline itself (canonicalisation, the report, metrics).
One at a time, each await is a full loop wake-up: per-stage figures are a little higher than in
a burst, where one loop iteration serves many analyses.

    .venv/bin/python benchmarks/link_analyzer_profile.py            # --n 200
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import time
from typing import Any

from link_analyzer_fakes import analyzer_config, redis_client, redis_url, remote_fakes

import link_analyzer.pipeline as pipeline
from link_analyzer.service import LinkAnalyzerService
from link_analyzer.ssrf import AddressPolicy

LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])


def timed(cpu: collections.defaultdict[str, float], obj: Any, name: str, label: str) -> None:
    inner = getattr(obj, name)

    @functools.wraps(inner)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        c0 = time.process_time()
        try:
            return await inner(*args, **kwargs)
        finally:
            cpu[label] += time.process_time() - c0

    setattr(obj, name, wrapper)


async def main(url: str, n: int) -> None:
    cpu: collections.defaultdict[str, float] = collections.defaultdict(float)
    client = redis_client(url, blocking=True)
    await client.flushdb()
    async with (
        remote_fakes(origin_latency=0.0, hosts=100) as up,
        LinkAnalyzerService(analyzer_config(up.gemini_url), client, policy=LOOPBACK) as s,
    ):
        a = s.analyzer
        for i in range(20):
            await a.analyze(up.url(10**6 + i, host=i))
        timed(cpu, s.fetcher, "fetch_html", "fetch: httpx through the SSRF guard")
        timed(cpu, pipeline, "extract_page", "HTML head parse + metadata")
        timed(cpu, s.gemini, "analyze", "Gemini call: SDK over aiohttp")
        timed(cpu, s.cache, "get_metadata", "Redis: cache get metadata")
        timed(cpu, s.cache, "put_metadata", "Redis: cache put metadata")
        timed(
            cpu,
            s.cache,
            "get_analysis",
            "Redis: cache get analysis (x2 before the claim, x1 with it)",
        )
        timed(cpu, s.cache, "put_analysis", "Redis: cache put analysis")
        timed(cpu, a.lease, "acquire", "Redis: lease acquire")
        if hasattr(a.lease, "acquire_unless"):  # the claim: lease + answer check, one script
            timed(cpu, a.lease, "acquire_unless", "Redis: lease claim (answer checked)")
        timed(cpu, a.lease, "release", "Redis: lease release")
        timed(cpu, s.ledger, "record", "Redis: cost ledger")
        c0 = time.process_time()
        for i in range(n):
            await a.analyze(up.url(i, host=i % 100))
        total = time.process_time() - c0
    await client.aclose()
    print(f"CPU per uncached analysis, {n} one after another (ms)")
    print(f"{'total':44} {total / n * 1000:6.2f}")
    for label, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"{label:44} {seconds / n * 1000:6.2f}")
    rest = total - sum(cpu.values())
    print(f"{'rest: pipeline, canonicalise, report, metrics':44} {rest / n * 1000:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    with redis_url() as rurl:
        asyncio.run(main(rurl, args.n))
