"""The analysis cache on real Redis: a lookup is one GET; hit/miss counts follow, coalesced."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from link_analyzer.cache import RedisAnalysisCache


async def test_counts_of_a_burst_are_written_together_and_flushed_for_stats(
    redis_client: aioredis.Redis,
) -> None:
    cache = RedisAnalysisCache(redis_client)
    await cache.put_metadata("k1", {"title": "t"}, ttl_s=60)
    sent: list[int] = []
    send = cache._send_counts

    async def counting() -> None:
        sent.append(sum(cache._pending.values()))
        await send()

    cache._send_counts = counting  # type: ignore[method-assign]
    found = await asyncio.gather(*(cache.get_metadata(f"k{i % 2}") for i in range(50)))
    stats = await cache.stats()
    await cache.aclose()
    assert sum(v is not None for v in found) == 25
    assert stats["layers"]["metadata"] == {"hits": 25, "misses": 25, "hit_rate": 0.5}
    # One counter round trip in flight at a time: the burst's 50 counts in a few pipelines.
    assert sum(sent) == 50 and len(sent) <= 5, sent
