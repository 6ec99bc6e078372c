"""CPU of the guarded fetcher in a burst: N fetches at once, the origin answering after L.

The fake origin (``link_analyzer_fakes``) in a child process on ``--hosts`` loopback ports;
one ``Fetcher`` (httpx over httpcore through the SSRF-guarded backend) fetching N distinct
pages at once, each ``--rounds`` times (the first round opens the connections, later rounds
reuse them: keep-alive). Prints this process's CPU per fetch for each pool layout in
``--shards`` (1: one httpcore pool, as before; 32: the fetcher's default), alternated.

    .venv/bin/python benchmarks/link_analyzer_fetch.py     # --n 100 --hosts 100 --latency 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time

from link_analyzer_fakes import remote_fakes, table

from link_analyzer.fetch import Fetcher, FetchLimits
from link_analyzer.ssrf import AddressPolicy

LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])


async def burst(f: Fetcher, urls: list[str]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    got = await asyncio.gather(*(f.fetch_html(u) for u in urls))
    assert all(r.status == 200 for r in got)
    return time.process_time() - c0, time.perf_counter() - t0


async def main(args: argparse.Namespace) -> None:
    rows = []
    async with remote_fakes(origin_latency=args.latency, hosts=args.hosts) as up:
        for rep in range(args.repeat):
            for shards in args.shards:
                # No rate spacing: the rounds follow each other quickly on the same hosts.
                limits = dataclasses.replace(
                    FetchLimits(), pool_shards=shards, per_host_rate_per_s=None
                )
                async with Fetcher(limits, LOOPBACK) as f:
                    for rnd in range(args.rounds):
                        urls = [
                            up.url(rep * 10**6 + rnd * 10**4 + i, host=i % args.hosts)
                            for i in range(args.n)
                        ]
                        cpu, wall = await burst(f, urls)
                        label = "new connections" if rnd == 0 else "keep-alive"
                        rows.append(
                            [f"{shards} pool(s), {label}", rep + 1, cpu / args.n * 1000, wall]
                        )
    print(
        f"{args.n} fetches at once over {args.hosts} hosts, origin latency "
        f"{args.latency * 1000:g} ms; CPU of this process per fetch"
    )
    print(table(["pool layout, round", "rep", "CPU ms/fetch", "wall s"], rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 32])
    asyncio.run(main(parser.parse_args()))
