"""Invalidation through the Redis Stream: every L1 applies it; a reconnecting L1 catches up; one
that fell behind the stream's retention flushes itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from cache_support import MakeCache
from tests_support import CuttableProxy

from haetae.cache import InvalidationBus, LayeredCache
from haetae.cache import keys as ck

MakeBus = Callable[..., Awaitable[InvalidationBus]]


@pytest.fixture
async def make_bus() -> AsyncIterator[MakeBus]:
    buses: list[InvalidationBus] = []

    async def make(cache: LayeredCache, **kw: object) -> InvalidationBus:
        assert cache.l2 is not None
        bus = InvalidationBus(cache.l2.client, cache, block_ms=200, retry_s=0.05, **kw)  # type: ignore[arg-type]
        await bus.start()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.stop()


async def value(key: str) -> str:
    return f"v-{key}"


async def test_invalidation_reaches_every_l1_before_the_wait_returns(
    make_cache: MakeCache, make_bus: MakeBus, redis_client: aioredis.Redis
) -> None:
    caches = [await make_cache() for _ in range(4)]
    buses = [await make_bus(c, node_id=f"node{i}") for i, c in enumerate(caches)]
    for c in caches:
        for k in ("a:1", "a:2", "b:1"):
            assert await c.get(k, value) == f"v-{k}"
    assert sorted(await buses[0].connected_nodes()) == ["node0", "node1", "node2", "node3"]
    entry = await buses[0].invalidate(keys=["a:1"])
    assert entry is not None
    result = await buses[0].wait_applied(entry, timeout_s=5)
    assert result.complete and sorted(result.applied) == ["node0", "node1", "node2", "node3"]
    for c in caches:
        assert "a:1" not in c.l1 and "a:2" in c.l1
    assert not await redis_client.exists(ck.value_key("a:1"))
    # Prefix: L2 keys found by SCAN, every L1 by its own index.
    entry = await buses[1].invalidate(prefixes=["a:"])
    assert entry is not None
    assert (await buses[1].wait_applied(entry, timeout_s=5)).complete
    for c in caches:
        assert "a:2" not in c.l1 and "b:1" in c.l1
    assert not await redis_client.exists(ck.value_key("a:2"))
    assert await redis_client.exists(ck.value_key("b:1"))


async def test_tag_invalidation_reaches_l1s_that_never_saw_the_tag(
    make_cache: MakeCache, make_bus: MakeBus
) -> None:
    a, b = await make_cache(), await make_cache()
    bus_a, _ = await make_bus(a), await make_bus(b)
    await a.set("p:1", 1, tags=["catalog"])
    await a.set("p:2", 2, tags=["catalog"])
    # b read them from L2: its L1 entries carry no tags, yet the invalidation names the keys.
    assert await b.get("p:1") == 1 and await b.get("p:2") == 2
    entry = await bus_a.invalidate(tags=["catalog"])
    assert entry is not None
    assert (await bus_a.wait_applied(entry, timeout_s=5)).complete
    assert "p:1" not in b.l1 and "p:2" not in b.l1 and "p:1" not in a.l1
    assert await b.get("p:1") is None


async def test_layers_select_where_it_applies(
    make_cache: MakeCache, make_bus: MakeBus, redis_client: aioredis.Redis
) -> None:
    a = await make_cache()
    bus = await make_bus(a)
    await a.set("k:1", 1)
    assert await bus.invalidate(keys=["k:1"], layers=["l2"]) is None
    assert "k:1" in a.l1 and not await redis_client.exists(ck.value_key("k:1"))
    await a.set("k:2", 2)
    assert await bus.invalidate(keys=["k:2"], layers=["l1"]) is not None
    assert "k:2" not in a.l1 and await redis_client.exists(ck.value_key("k:2"))
    stats = await bus.node_stats()
    assert bus.node_id in stats and stats[bus.node_id]["cache"] == "default"


async def test_reconnecting_l1_catches_up_and_never_serves_the_old_value(
    make_cache: MakeCache, make_bus: MakeBus, redis_url: str
) -> None:
    proxy = CuttableProxy(redis_url)
    await proxy.start()
    try:
        publisher = await make_cache()
        remote = await make_cache(url=proxy.url)
        pub_bus = await make_bus(publisher, node_id="pub")
        remote_bus = await make_bus(remote, node_id="remote")
        assert await remote.get("r:1", value) == "v-r:1"
        proxy.cut()
        entry = await pub_bus.invalidate(keys=["r:1"])
        assert entry is not None
        waited = await pub_bus.wait_applied(entry, timeout_s=0.3)
        assert waited.pending == ["remote"] and waited.applied == ["pub"]
        proxy.restore()
        waited = await pub_bus.wait_applied(entry, timeout_s=5)
        assert waited.complete, waited
        assert "r:1" not in remote.l1
        assert remote_bus.flushes == 0 and remote_bus.connected
    finally:
        await proxy.stop()


async def test_l1_behind_the_stream_retention_flushes_itself(
    make_cache: MakeCache, make_bus: MakeBus, redis_url: str
) -> None:
    proxy = CuttableProxy(redis_url)
    await proxy.start()
    try:
        publisher = await make_cache()
        remote = await make_cache(url=proxy.url)
        pub_bus = await make_bus(publisher, maxlen=5, exact_trim=True)
        remote_bus = await make_bus(remote)
        for i in range(10):
            await remote.get(f"keep:{i}", value)
        proxy.cut()
        for i in range(20):
            await pub_bus.invalidate(keys=[f"other:{i}"])
        proxy.restore()
        for _ in range(200):
            if remote_bus.flushes:
                break
            await asyncio.sleep(0.01)
        assert remote_bus.flushes == 1
        assert len(remote.l1) == 0
        entry = await pub_bus.invalidate(keys=["after"])
        assert entry is not None
        assert (await pub_bus.wait_applied(entry, timeout_s=5)).complete
    finally:
        await proxy.stop()
