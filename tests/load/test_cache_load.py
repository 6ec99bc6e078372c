"""Mixed load on real Redis across four L1s: reads, writes and invalidations interleaved; no
errors, and after an invalidation returns no L1 serves the old value."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

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
