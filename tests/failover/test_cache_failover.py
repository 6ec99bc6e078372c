"""Redis killed, hung and restarted under load: callers see no errors, recovery is automatic.

Each test runs its own redis-server (private unix socket) so it can kill it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from haetae.cache import (
    CachePolicy,
    InvalidationBus,
    L1Cache,
    Layer,
    LayeredCache,
    Outcome,
    RedisL2,
)
from haetae.embedded import EmbeddedRedis
from haetae.resilience import BreakerConfig, BreakerState, CircuitBreaker


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    with tempfile.TemporaryDirectory(prefix="hc-fo-") as d:
        server = EmbeddedRedis(Path(d), persist=False)
        server.start()
        yield server
        server.stop()


def breaker() -> CircuitBreaker:
    return CircuitBreaker(
        "l2", BreakerConfig(timeout_s=0.05, wait_in_open_s=0.2, minimum_calls=5, window_size=20)
    )


@pytest.fixture
async def cache(own_redis: EmbeddedRedis) -> AsyncIterator[LayeredCache]:
    client = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=0.2)
    c = LayeredCache(L1Cache(50), RedisL2(client), policy=CachePolicy(ttl_s=60), breaker=breaker())
    yield c
    await c.aclose()
    assert c.l2 is not None
    await c.l2.aclose()  # its own connection too (the RESP fast path), and the client


async def origin(key: str) -> str:
    await asyncio.sleep(0.001)
    return f"origin-{key}"


class Load:
    """Readers over 500 keys (the L1 holds 50, so most reads need L2 or the loader)."""

    def __init__(self, cache: LayeredCache, readers: int = 20) -> None:
        self.cache = cache
        self.errors: list[BaseException] = []
        self.reads = 0
        self.stop = asyncio.Event()
        self.tasks = [asyncio.ensure_future(self._reader(i)) for i in range(readers)]

    async def _reader(self, seed: int) -> None:
        i = seed
        while not self.stop.is_set():
            key = f"k:{i % 500}"
            i += 7
            try:
                value = await self.cache.get(key, origin)
                assert value == f"origin-{key}"
            except BaseException as exc:
                self.errors.append(exc)
                raise
            self.reads += 1
            await asyncio.sleep(0)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


async def wait_for(
    predicate: object, within: float = 5.0, cache: LayeredCache | None = None
) -> None:
    """Poll ``predicate``; with ``cache``, keep reading through it (a breaker only half-opens
    and closes on traffic)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    n = 0
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        if cache is not None:
            n += 1
            await cache.get(f"probe:{n}", origin)
        await asyncio.sleep(0.02)


async def test_redis_killed_and_restarted_under_load(
    own_redis: EmbeddedRedis, cache: LayeredCache
) -> None:
    load = Load(cache)
    await asyncio.sleep(0.3)
    assert own_redis._proc is not None
    own_redis._proc.kill()
    own_redis._proc.wait()
    await wait_for(lambda: cache.breaker.state is BreakerState.OPEN)
    reads_while_down = load.reads
    await asyncio.sleep(0.5)
    assert load.reads > reads_while_down  # served by L1 + loader meanwhile
    own_redis.start()
    await wait_for(lambda: cache.breaker.state is BreakerState.CLOSED)

    def l2_hits() -> int:
        return cache.stats.counts[Layer.L2, Outcome.HIT]

    before = l2_hits()
    # L2 in use again (it came back empty, so values are re-stored and then read back).
    await wait_for(lambda: l2_hits() > before, within=10)
    await load.finish()
    assert load.errors == []


async def test_hanging_redis_costs_at_most_the_timeout(
    own_redis: EmbeddedRedis, cache: LayeredCache
) -> None:
    await cache.get("warm", origin)
    assert own_redis._proc is not None
    os.kill(own_redis._proc.pid, signal.SIGSTOP)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await cache.get("hang:1", origin) == "origin-hang:1"
        # One L2 read (timeout) and one lease attempt (timeout), then the loader; generous.
        assert loop.time() - start < 1.0
        load = Load(cache, readers=5)
        await wait_for(lambda: cache.breaker.state is BreakerState.OPEN)
        await load.finish()
        assert load.errors == []
        # While open, reads skip Redis entirely.
        start = loop.time()
        for i in range(100):
            await cache.get(f"open:{i}", origin)
        assert loop.time() - start < 1.0
    finally:
        os.kill(own_redis._proc.pid, signal.SIGCONT)
    await wait_for(lambda: cache.breaker.state is BreakerState.CLOSED, cache=cache)


async def test_invalidation_follower_recovers_after_a_restart(
    own_redis: EmbeddedRedis, cache: LayeredCache
) -> None:
    other_client = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=0.2)
    other = LayeredCache(L1Cache(100), RedisL2(other_client), breaker=breaker())
    assert cache.l2 is not None
    bus_a = InvalidationBus(cache.l2.client, cache, block_ms=100, retry_s=0.05, node_id="a")
    bus_b = InvalidationBus(other_client, other, block_ms=100, retry_s=0.05, node_id="b")
    try:
        async with bus_a, bus_b:
            for i in range(3):
                entry = await bus_a.invalidate(keys=[f"x{i}"])
            assert entry is not None
            assert (await bus_a.wait_applied(entry, timeout_s=5)).complete
            await other.get("k:1", origin)
            assert own_redis._proc is not None
            own_redis._proc.kill()
            own_redis._proc.wait()
            await wait_for(lambda: not bus_b.connected)
            own_redis.start()
            await wait_for(lambda: bus_b.connected and bus_a.connected)
            # The stream came back empty: b cannot know what it missed, so it flushed.
            assert bus_b.flushes == 1 and "k:1" not in other.l1
            await other.get("k:2", origin)
            entry = await bus_a.invalidate(keys=["k:2"])
            assert entry is not None
            assert (await bus_a.wait_applied(entry, timeout_s=5)).complete
            assert "k:2" not in other.l1
    finally:
        await other.aclose()
        assert other.l2 is not None
        await other.l2.aclose()
