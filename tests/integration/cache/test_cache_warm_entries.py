"""Warm entries on the invalidation stream: followers copy the keys from L2 before acking,
an invalidation is never undone by a warm-up, and the format stays readable both ways."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import redis.asyncio as aioredis
from cache_support import MakeCache

from haetae.cache import Invalidation, InvalidationBus
from haetae.cache import keys as ck
from haetae.cache.invalidation import WARM_ENTRY_KEYS, warm_keys


async def test_followers_fill_from_l2_before_they_ack(make_cache: MakeCache) -> None:
    publisher, follower = await make_cache(), await make_cache()
    assert publisher.l2 is not None and follower.l2 is not None
    await publisher.set("page:a", {"v": 1})
    await publisher.set("page:b", "two")
    async with (
        InvalidationBus(publisher.l2.client, publisher, node_id="pub", block_ms=100) as pub,
        InvalidationBus(follower.l2.client, follower, node_id="fol", block_ms=100) as fol,
    ):
        entry = await pub.warm(["page:a", "page:b", "page:none"])
        assert entry is not None
        result = await pub.wait_applied(entry, timeout_s=5.0)
        assert "fol" in result.applied and result.complete
        # Acked means filled: no polling needed.
        assert follower.l1.get_entry("page:a") is not None
        assert follower.l1.get_entry("page:a").value == {"v": 1}  # type: ignore[union-attr]
        assert "page:b" in follower.l1 and "page:none" not in follower.l1
        assert fol.warmed_keys == 2
        # A warm-up is not a lookup: the keys do not look hot, no miss is counted.
        assert follower.stats.hot.top("page") == []
        assert follower.l1.misses == 0


async def test_an_invalidation_after_a_warm_entry_wins(make_cache: MakeCache) -> None:
    publisher, follower = await make_cache(), await make_cache()
    assert publisher.l2 is not None and follower.l2 is not None
    await publisher.set("page:a", "old")
    async with InvalidationBus(publisher.l2.client, publisher, node_id="pub", block_ms=100) as pub:
        # Both entries land before the follower reads: one batch, warm first.
        await pub.warm(["page:a"])
        await pub.invalidate(["page:a"])
        async with InvalidationBus(
            follower.l2.client, follower, node_id="fol", block_ms=100
        ) as fol:
            fol.last_id, fol.last_seq = "0-0", 0  # replay the stream from the start
            await asyncio.sleep(0.3)
            entry = await pub.warm([])  # nothing: no entry
            assert entry is None
    assert "page:a" not in follower.l1


async def test_warm_entries_are_chunked_and_numbered(
    make_cache: MakeCache, redis_client: aioredis.Redis
) -> None:
    cache = await make_cache()
    assert cache.l2 is not None
    bus = InvalidationBus(cache.l2.client, cache, node_id="pub")
    seq_before = int(await redis_client.get(ck.INVALIDATION_SEQ) or 0)
    keys = [f"k:{i}" for i in range(WARM_ENTRY_KEYS + 1)]
    entry = await bus.warm(keys)
    assert entry is not None
    tail: Any = await redis_client.xrevrange(ck.INVALIDATION_STREAM, count=2)
    (_, last), (_, first) = tail
    assert int(last[b"n"]) == int(first[b"n"]) + 1 == seq_before + 2
    assert len(orjson.loads(first[b"w"])) == WARM_ENTRY_KEYS
    assert orjson.loads(last[b"w"]) == [keys[-1]]


def test_format_is_compatible_both_ways() -> None:
    warm = {b"n": b"7", b"w": b'["a:1","b:2"]', b"o": b"node"}
    old = {b"n": b"8", b"k": b'["a:1"]', b"t": b"[]", b"p": b"[]", b"o": b"node"}
    assert warm_keys(warm) == ("a:1", "b:2")
    assert warm_keys(old) is None
    # A follower that predates warm entries reads one as an invalidation of nothing.
    assert Invalidation.from_fields(warm) == Invalidation()
    assert warm_keys({b"w": b'{"not": "a list"}'}) == ()


async def test_many_keys_are_filled_in_slices(make_cache: MakeCache) -> None:
    publisher, follower = await make_cache(), await make_cache()
    keys = [f"item:{i}" for i in range(300)]
    for key in keys:
        await publisher.set(key, key)
    assert await follower.fill_from_l2(keys) == 300
    assert all(follower.l1.get_entry(k).value == k for k in keys)  # type: ignore[union-attr]
