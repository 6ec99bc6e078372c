"""L1 benchmarks against cashews and aiocache in the same run.

1. Awaited hit latency of an in-process cache (one hot key, best of 5 runs of 200k gets).
2. Hit ratio on a Zipf(s=0.9) trace: 100k keys, 1M requests, capacity 1 % (1000 entries), with
   LRU and Belady's OPT on the same trace for reference; ours with the adaptive window (default)
   and with the window fixed at 1 %.
3. The same on a recency-biased trace: the Zipf ranks' keys shift by the cache's size every
   10 x capacity requests (a moving hot set), where a fixed small window holds on to yesterday's
   frequent keys and the hill climber should grow the window.

    python benchmarks/cache_l1.py [--requests 1000000] [--keys 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import heapq
import itertools
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from haetae.cache import L1Cache, LayeredCache


async def _best_per_op(get: Callable[[str], Awaitable[Any]], n: int = 200_000) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            await get("hot")
        best = min(best, (time.perf_counter() - start) / n)
    return best


async def hit_latency() -> dict[str, float]:
    from aiocache import SimpleMemoryCache
    from cashews import Cache

    ours = LayeredCache(L1Cache(10_000))
    await ours.set("hot", {"v": 1})
    cashews = Cache()
    cashews.setup("mem://?size=10000")
    await cashews.set("hot", {"v": 1})
    aiocache = SimpleMemoryCache()
    await aiocache.set("hot", {"v": 1})
    return {
        "haetae LayeredCache.get (L1 hit)": await _best_per_op(ours.get),
        "cashews mem:// get": await _best_per_op(cashews.get),
        "aiocache SimpleMemoryCache.get": await _best_per_op(aiocache.get),
    }


def zipf_trace(n_keys: int, n_req: int, s: float, seed: int) -> list[int]:
    rng = random.Random(seed)
    cum = list(itertools.accumulate(1 / (i + 1) ** s for i in range(n_keys)))
    total = cum[-1]
    return [bisect.bisect(cum, rng.random() * total) for _ in range(n_req)]


def shifting_trace(n_keys: int, n_req: int, s: float, seed: int, capacity: int) -> list[int]:
    """Zipf ranks whose keys move by ``capacity`` every ``10 * capacity`` requests."""
    zipf = zipf_trace(n_keys, n_req, s, seed)
    period = 10 * capacity
    return [(r + (i // period) * capacity) % n_keys for i, r in enumerate(zipf)]


def ratio_ours(trace: list[int], capacity: int, adaptive: bool = True) -> float:
    c = L1Cache(capacity, max_bytes=1 << 40, adaptive=adaptive)
    hits = 0
    for k in map(str, trace):
        if c.get_entry(k) is None:
            c.set(k, 1, size=1)
        else:
            hits += 1
    return hits / len(trace)


def ratio_lru(trace: list[int], capacity: int) -> float:
    c: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for k in trace:
        if k in c:
            hits += 1
            c.move_to_end(k)
        else:
            c[k] = None
            if len(c) > capacity:
                c.popitem(last=False)
    return hits / len(trace)


def ratio_opt(trace: list[int], capacity: int) -> float:
    """Belady: evict the entry whose next use is farthest away (lazy-deletion max-heap)."""
    n = len(trace)
    next_use = [n] * n
    last: dict[int, int] = {}
    for i in range(n - 1, -1, -1):
        next_use[i] = last.get(trace[i], n + i)  # never again: distinct, far
        last[trace[i]] = i
    cached: dict[int, int] = {}
    heap: list[tuple[int, int]] = []
    hits = 0
    for i, k in enumerate(trace):
        if k in cached:
            hits += 1
        elif len(cached) >= capacity:
            while True:
                neg, victim = heapq.heappop(heap)
                if cached.get(victim) == -neg:
                    del cached[victim]
                    break
        cached[k] = next_use[i]
        heapq.heappush(heap, (-next_use[i], k))
    return hits / n


async def ratio_cashews(trace: list[int], capacity: int) -> float:
    from cashews import Cache

    c = Cache()
    c.setup(f"mem://?size={capacity}")
    hits = 0
    for k in map(str, trace):
        if await c.get(k) is None:
            await c.set(k, 1)
        else:
            hits += 1
    return hits / len(trace)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    print("awaited hit, one hot key (best of 5 x 200k):")
    for name, per_op in (await hit_latency()).items():
        print(f"  {name:40s} {per_op * 1e6:6.2f} us")
    capacity = args.keys // 100
    traces = {
        "Zipf 0.9": zipf_trace(args.keys, args.requests, 0.9, args.seed),
        "moving hot set (Zipf 0.9 shifted)": shifting_trace(
            args.keys, args.requests, 0.9, args.seed, capacity
        ),
    }
    for name, trace in traces.items():
        print(f"hit ratio, {name}, {args.keys} keys, {args.requests} req., capacity {capacity}:")
        adaptive = ratio_ours(trace, capacity)
        fixed = ratio_ours(trace, capacity, adaptive=False)
        print(f"  {'haetae L1 (W-TinyLFU, adaptive window)':40s} {adaptive:6.2%}")
        print(f"  {'haetae L1 (W-TinyLFU, window fixed 1 %)':40s} {fixed:6.2%}")
        print(f"  {'cashews mem:// (LRU)':40s} {await ratio_cashews(trace, capacity):6.2%}")
        print(f"  {'LRU':40s} {ratio_lru(trace, capacity):6.2%}")
        print(f"  {'Belady OPT':40s} {ratio_opt(trace, capacity):6.2%}")
    print("aiocache SimpleMemoryCache has no size bound (no eviction): not comparable")


if __name__ == "__main__":
    asyncio.run(main())
