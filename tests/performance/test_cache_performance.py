"""Cache performance sanity (timing goals live in benchmarks/cache_*.py; bounds here are loose)."""

from __future__ import annotations

import random
import time

import redis.asyncio as aioredis

from haetae.cache import L1Cache, LayeredCache, RedisL2


async def test_awaited_l1_hits_are_cheap() -> None:
    cache = LayeredCache(L1Cache(1000))
    await cache.set("k", {"v": 1})
    n = 100_000
    start = time.perf_counter()
    for _ in range(n):
        await cache.get("k")
    per_hit = (time.perf_counter() - start) / n
    assert per_hit < 50e-6  # ~1 us measured; this only catches a pathological regression


def test_hit_ratio_on_zipf_beats_lru() -> None:
    rng = random.Random(3)
    n_keys, n_req, capacity = 20_000, 200_000, 200
    weights = [1 / (i + 1) ** 0.9 for i in range(n_keys)]
    trace = [str(k) for k in rng.choices(range(n_keys), weights, k=n_req)]
    l1 = L1Cache(capacity)
    lru: dict[str, None] = {}
    ours = lru_hits = 0
    for k in trace:
        if l1.get_entry(k) is None:
            l1.set(k, 1, size=1)
        else:
            ours += 1
        if k in lru:
            lru_hits += 1
            del lru[k]
        elif len(lru) >= capacity:
            del lru[next(iter(lru))]
        lru[k] = None
    assert ours > lru_hits * 1.1


def test_memory_stays_bounded_and_no_write_stalls() -> None:
    l1 = L1Cache(50_000, max_bytes=8 * 1024 * 1024)
    worst = 0.0
    for i in range(300_000):
        start = time.perf_counter()
        l1.set(f"key-{i}", "x" * (i % 300), ttl=0.5 if i % 3 == 0 else None)
        worst = max(worst, time.perf_counter() - start)
        if i % 7 == 0:
            l1.get(f"key-{i // 2}")
    assert l1.bytes <= 8 * 1024 * 1024
    assert len(l1) <= 50_000
    # Aging the sketch and sweeping expiries are incremental: no single write takes long.
    assert worst < 0.5  # GC pauses included; the sketch ages a row (~ms) at a time


async def test_l2_auto_pipelining_batches_concurrent_commands(redis_url: str) -> None:
    import asyncio

    l2 = RedisL2(aioredis.Redis.from_url(redis_url))
    try:
        await asyncio.gather(*(l2.set(f"pp:{i}", b"x", ttl_ms=10_000) for i in range(500)))
        before = l2.pipeline.batches
        values = await asyncio.gather(*(l2.get(f"pp:{i}") for i in range(500)))
        assert values == [b"x"] * 500
        assert l2.pipeline.batches - before <= 4  # 500 GETs in a couple of round trips
        assert await l2.mget(["pp:1", "nope"]) == [b"x", None]
    finally:
        await l2.aclose()
