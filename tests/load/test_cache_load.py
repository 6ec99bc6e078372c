"""Mixed load on real Redis across four L1s: reads, writes and invalidations interleaved; no
errors, and after an invalidation returns no L1 serves the old value. Memory stays bounded over
a million operations (RSS stable; no timing asserts)."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import AsyncIterator

import psutil
import pytest
import redis.asyncio as aioredis

from haetae.cache import CachePolicy, InvalidationBus, L1Cache, LayeredCache, RedisL2


@pytest.fixture
async def fleet(
    redis_url: str, redis_client: aioredis.Redis
) -> AsyncIterator[list[tuple[LayeredCache, InvalidationBus]]]:
    members = []
    for i in range(4):
        client = aioredis.Redis.from_url(redis_url)
        cache = LayeredCache(L1Cache(2000), RedisL2(client), policy=CachePolicy(ttl_s=30))
        bus = InvalidationBus(
            aioredis.Redis.from_url(redis_url), cache, node_id=f"load-{i}", block_ms=200
        )
        await bus.start()
        members.append((cache, bus))
    yield members
    for cache, bus in members:
        await bus.stop()
        await bus.client.aclose()
        await cache.aclose()
        assert cache.l2 is not None
        await cache.l2.aclose()


async def test_mixed_load_keeps_every_l1_consistent(
    fleet: list[tuple[LayeredCache, InvalidationBus]],
) -> None:
    versions: dict[str, int] = {}

    async def origin(key: str) -> int:
        return versions.get(key, 0)

    errors: list[BaseException] = []
    ops = 0

    async def worker(seed: int) -> None:
        nonlocal ops
        rng = random.Random(seed)
        for _ in range(300):
            cache, bus = fleet[rng.randrange(4)]
            key = f"item:{rng.randrange(200)}"
            try:
                if rng.random() < 0.05:
                    versions[key] = version = versions.get(key, 0) + 1
                    result = await bus.invalidate_and_wait(keys=[key], timeout_s=5)
                    assert result is not None and result.complete, result
                    # The guarantee: once the call returned, nobody serves an older version.
                    for other, _ in fleet:
                        got = await other.get(key, origin)
                        assert got >= version, (key, got, version)
                else:
                    await cache.get(key, origin)
            except BaseException as exc:
                errors.append(exc)
                raise
            ops += 1

    await asyncio.gather(*(worker(s) for s in range(50)))
    assert errors == []
    assert ops == 50 * 300
    hits = sum(c.l1.hits for c, _ in fleet)
    assert hits > ops / 4


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def _payload(rng: random.Random) -> str:
    # Mostly small values, some medium, a few large ones (up to 16 KiB).
    r = rng.random()
    size = rng.randrange(8, 256) if r < 0.7 else rng.randrange(256, 4096) if r < 0.95 else 16384
    return "x" * size


@pytest.mark.slow
def test_l1_memory_stays_bounded_over_a_million_operations() -> None:
    """1M mixed set/get/delete (TTLs, tags, value sizes 8 B-16 KiB, 300k distinct keys) through
    an L1 bounded at 20k entries / 32 MiB: RSS after the second quarter and at the end differ
    by less than a generous bound (no timing asserts)."""
    rng = random.Random(11)
    c = L1Cache(20_000, max_bytes=32 * 1024 * 1024)
    n = 1_000_000
    rss: list[int] = []
    for i in range(n):
        key = f"k{rng.randrange(300_000)}"
        op = rng.random()
        if op < 0.6:
            if c.get_entry(key) is None:
                c.set(key, _payload(rng), ttl=rng.choice((None, 1.0, 30.0)), tags=(f"t{i % 97}",))
        elif op < 0.95:
            c.set(key, _payload(rng), ttl=rng.choice((None, 5.0)), tags=(f"t{i % 89}",))
        elif op < 0.99:
            c.delete(key)
        else:
            c.delete_tag(f"t{rng.randrange(97)}")
        if (i + 1) % (n // 4) == 0:
            rss.append(_rss())
    assert len(c) <= 20_000 and c.bytes <= 32 * 1024 * 1024
    # Index structures (tags, expiry buckets, the sketch's doorkeeper) must not grow with the
    # number of operations: what quarter 2 holds, the end holds within 16 MiB.
    growth = rss[-1] - rss[1]
    assert growth < 16 * 1024 * 1024, [r // 1024 for r in rss]
    assert len(c._tags) <= 97 + 89
    assert sum(len(b) for b in c._buckets.values()) <= 2 * 20_000


@pytest.mark.slow
async def test_layered_memory_stays_bounded_with_l2(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    """The same mix through L1 + L2 on real Redis (200k operations, 50 concurrent tasks)."""
    client = aioredis.Redis.from_url(redis_url)
    l2 = RedisL2(client)
    cache = LayeredCache(
        L1Cache(5_000, max_bytes=8 * 1024 * 1024), l2, policy=CachePolicy(ttl_s=30)
    )

    async def origin(key: str) -> str:
        return "v" * (len(key) * 8)

    n, tasks = 200_000, 50
    rss: list[int] = []
    try:

        async def worker(seed: int, count: int) -> None:
            rng = random.Random(seed)
            for _ in range(count):
                key = f"item:{rng.randrange(50_000)}"
                op = rng.random()
                if op < 0.7:
                    await cache.get(key, origin)
                elif op < 0.95:
                    await cache.set(key, _payload(rng), tags=(f"t{rng.randrange(50)}",))
                else:
                    cache.apply_invalidation(keys=[key])
                    await l2.delete([key])

        for quarter in range(4):
            await asyncio.gather(
                *(worker(quarter * tasks + t, n // 4 // tasks) for t in range(tasks))
            )
            rss.append(_rss())
    finally:
        await cache.aclose()
        await l2.aclose()
        await client.aclose()
    assert len(cache.l1) <= 5_000
    assert rss[-1] - rss[1] < 16 * 1024 * 1024, [r // 1024 for r in rss]
