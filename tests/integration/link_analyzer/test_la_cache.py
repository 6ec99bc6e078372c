"""The analysis cache on haetae.cache (L1 + Redis L2): hit/miss counts coalesced, entries kept
apart by kind with their own TTLs, invalidation reaching every process's L1."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from haetae.cache.keys import value_key
from link_analyzer.cache import LayeredAnalysisCache, analysis_key, metadata_key


async def test_counts_of_a_burst_are_written_together_and_flushed_for_stats(
    redis_client: aioredis.Redis,
) -> None:
    cache = LayeredAnalysisCache.build(redis_client, follow=False)
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
    assert stats["backend"] == "haetae.cache" and stats["layered"]["cache"] == "link_analyzer"
    assert stats["layered"]["layers"]["l1"]["hits"] >= 25


async def test_metadata_and_analysis_apart_with_their_own_ttls_in_both_layers(
    redis_client: aioredis.Redis,
) -> None:
    cache = LayeredAnalysisCache.build(redis_client, follow=False)
    try:
        await cache.put_metadata("u1", {"content_hash": "c1"}, ttl_s=30)
        await cache.put_analysis("c1", {"status": "done"}, ttl_s=600)
        assert metadata_key("u1") in cache.cache.l1 and analysis_key("c1") in cache.cache.l1
        meta_ttl = await redis_client.pttl(value_key(metadata_key("u1")))
        ai_ttl = await redis_client.pttl(value_key(analysis_key("c1")))
        assert 25_000 < meta_ttl <= 30_000 and 590_000 < ai_ttl <= 600_000
        # Another process (an empty L1) finds both through the L2.
        other = LayeredAnalysisCache.build(redis_client, follow=False)
        try:
            assert await other.get_analysis("c1") == {"status": "done"}
            assert await other.get_metadata("u1") == {"content_hash": "c1"}
            assert other.cache.stats.snapshot()["layers"]["l2"]["hit"] == 2
        finally:
            await other.aclose()
    finally:
        await cache.aclose()


async def test_invalidation_drops_both_layers_in_every_process(
    redis_client: aioredis.Redis,
) -> None:
    a = LayeredAnalysisCache.build(redis_client)
    b = LayeredAnalysisCache.build(redis_client)
    await a.start()
    await b.start()
    try:
        await a.put_metadata("u1", {"content_hash": "c1"}, ttl_s=60)
        await a.put_analysis("c1", {"status": "done"}, ttl_s=60)
        assert await b.get_metadata("u1") is not None and await b.get_analysis("c1") is not None
        assert metadata_key("u1") in b.cache.l1 and analysis_key("c1") in b.cache.l1

        assert await a.invalidate("u1") is True
        # When invalidate() returns, no L1 anywhere and not the L2 holds the entries.
        for key in (metadata_key("u1"), analysis_key("c1")):
            assert key not in a.cache.l1 and key not in b.cache.l1
            assert await redis_client.exists(value_key(key)) == 0
        assert await b.get_metadata("u1") is None
        assert await a.invalidate("u1") is False  # nothing left: the API answers 404

        # A refresh (a write over a value) is published: the other L1 drops its old copy.
        await a.put_metadata("u2", {"v": 1}, ttl_s=60)
        assert await b.get_metadata("u2") == {"v": 1}
        await a.put_metadata("u2", {"v": 2}, ttl_s=60)
        for _ in range(200):
            if metadata_key("u2") not in b.cache.l1:
                break
            await asyncio.sleep(0.01)
        assert await b.get_metadata("u2") == {"v": 2}
        stats = await a.stats()
        assert stats["invalidations"] == 2 and stats["following_invalidations"] is True
        assert {a.bus.node_id, b.bus.node_id} <= set(stats["nodes"])  # type: ignore[union-attr]
    finally:
        await a.aclose()
        await b.aclose()
