"""The read path against real Redis: L1 -> L2 -> loader, single flight, SWR, negative caching."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from cache_support import MakeCache

from haetae.cache import CachePolicy, Loaded
from haetae.cache import keys as ck


class CountingLoader:
    def __init__(self, value: Any = "v", delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.calls: list[str] = []

    async def __call__(self, key: str) -> Any:
        self.calls.append(key)
        await asyncio.sleep(self.delay)
        return self.value(key) if callable(self.value) else self.value


async def test_miss_loads_then_l1_then_l2_serve(make_cache: MakeCache) -> None:
    a = await make_cache()
    b = await make_cache()
    load = CountingLoader(lambda k: {"key": k})
    assert await a.get("user:1", load) == {"key": "user:1"}
    assert await a.get("user:1", load) == {"key": "user:1"}
    assert len(load.calls) == 1
    assert a.l1.hits == 1
    # Another process: L1 miss, L2 hit, no load.
    assert await b.get("user:1", load) == {"key": "user:1"}
    assert len(load.calls) == 1
    snap = b.stats.snapshot()["layers"]
    assert snap["l2"]["hit"] == 1 and snap["l1"]["misses"] == 1


async def test_thousand_concurrent_reads_of_a_missing_key_load_once(make_cache: MakeCache) -> None:
    cache = await make_cache()
    load = CountingLoader("value", delay=0.05)
    results = await asyncio.gather(*(cache.get("hot:missing", load) for _ in range(1000)))
    assert results == ["value"] * 1000
    assert load.calls == ["hot:missing"]


async def test_single_flight_across_processes_via_lease(make_cache: MakeCache) -> None:
    caches = [await make_cache() for _ in range(4)]
    load = CountingLoader("shared", delay=0.1)
    results = await asyncio.gather(*(c.get("x:lease", load) for c in caches for _ in range(50)))
    assert set(results) == {"shared"}
    assert load.calls == ["x:lease"]


async def test_negative_caching(make_cache: MakeCache, redis_client: aioredis.Redis) -> None:
    cache = await make_cache(CachePolicy(negative_ttl_s=30))
    load = CountingLoader(None)
    assert await cache.get("nope:1", load, default="absent") == "absent"
    assert await cache.get("nope:1", load) is None
    assert len(load.calls) == 1
    assert await redis_client.exists(ck.value_key("nope:1"))
    other = await make_cache()
    assert await other.get("nope:1", load, default=0) == 0
    assert len(load.calls) == 1


async def test_stale_while_revalidate(make_cache: MakeCache) -> None:
    cache = await make_cache(CachePolicy(ttl_s=0.05, stale_ttl_s=30))
    version = [1]
    load = CountingLoader(lambda k: version[0])
    assert await cache.get("swr:1", load) == 1
    await asyncio.sleep(0.08)
    version[0] = 2
    assert await cache.get("swr:1", load) == 1  # stale, served at once; refresh started
    for _ in range(50):
        await asyncio.sleep(0.01)
        if cache.l1.peek("swr:1") and cache.l1.peek("swr:1").value == 2:  # type: ignore[union-attr]
            break
    assert await cache.get("swr:1", load) == 2
    assert len(load.calls) == 2
    assert cache.stats.l1_stale >= 1


async def test_stale_l2_value_is_served_and_refreshed(make_cache: MakeCache) -> None:
    a = await make_cache(CachePolicy(ttl_s=0.05, stale_ttl_s=30))
    b = await make_cache(CachePolicy(ttl_s=0.05, stale_ttl_s=30))
    version = [1]
    load = CountingLoader(lambda k: version[0])
    await a.get("swr:l2", load)
    await asyncio.sleep(0.08)
    version[0] = 2
    assert await b.get("swr:l2", load) == 1
    for _ in range(50):
        await asyncio.sleep(0.01)
        if len(load.calls) == 2:
            break
    assert len(load.calls) == 2


async def test_loaded_tags_ttl_and_namespace_loaders(
    make_cache: MakeCache, redis_client: aioredis.Redis
) -> None:
    cache = await make_cache()

    async def product(key: str) -> Loaded:
        return Loaded({"id": key}, tags=("catalog",), ttl_s=100)

    cache.register_loader("product", product)
    assert cache.namespaces == ["product"]
    assert await cache.get("product:9") == {"id": "product:9"}
    assert await cache.get("unknown-namespace:1") is None
    assert await cache.get("no-namespace") is None
    assert await redis_client.smembers(ck.tag_key("catalog")) == {b"product:9"}
    ttl = await redis_client.pttl(ck.value_key("product:9"))
    assert 100_000 < ttl <= 130_000
    loaded, failed = await cache.warm(["product:1", "product:2"])
    assert (loaded, failed) == (2, 0)


async def test_loader_errors_reach_every_waiter_and_are_not_cached(make_cache: MakeCache) -> None:
    cache = await make_cache()
    calls = [0]

    async def flaky(key: str) -> str:
        calls[0] += 1
        await asyncio.sleep(0.01)
        if calls[0] == 1:
            raise RuntimeError("origin down")
        return "ok"

    results = await asyncio.gather(
        *(cache.get("f:1", flaky) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await cache.get("f:1", flaky) == "ok"
    assert cache.stats.snapshot()["layers"]["loader"]["error"] == 1
    seen: list[tuple[str, bool]] = []
    assert await cache.warm(["f:2"], on_progress=lambda k, ok: seen.append((k, ok))) == (1, 0)
    assert seen == [("f:2", True)]


async def test_set_get_many_and_a_cancelled_waiter_does_not_cancel_the_load(
    make_cache: MakeCache,
) -> None:
    cache = await make_cache()
    await cache.set("s:1", [1], tags=["t"])
    assert await cache.get_many(["s:1", "s:2"]) == [[1], None]
    load = CountingLoader("late", delay=0.05)
    first = asyncio.ensure_future(cache.get("c:1", load))
    second = asyncio.ensure_future(cache.get("c:1", load))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == "late"
    assert load.calls == ["c:1"]
