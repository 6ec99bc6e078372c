"""The L2 and the invalidation stream on a real three-master Redis Cluster (loopback ports,
started from the redis-server binary), through the L2's per-master fast path."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cache_support import LocalCluster
from redis.asyncio.cluster import RedisCluster

from haetae.cache import InvalidationBus, L1Cache, LayeredCache, RedisL2, client_from_url
from haetae.cache.cluster import ClusterPipeline
from haetae.resilience import BreakerConfig, CircuitBreaker


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="hc-cl-") as d:
        cluster = LocalCluster(Path(d))
        try:
            yield cluster.url
        finally:
            cluster.stop()


@pytest.fixture
async def cluster_caches(cluster_url: str) -> AsyncIterator[list[LayeredCache]]:
    # Cold cluster clients discover slots on first use: a lenient breaker keeps that from
    # counting as slow calls (the breaker itself is tested elsewhere).
    lenient = BreakerConfig(timeout_s=2.0, slow_call_duration_s=1.0)
    caches = [
        LayeredCache(
            L1Cache(1000), RedisL2.from_url(cluster_url), breaker=CircuitBreaker("cl", lenient)
        )
        for _ in range(2)
    ]
    assert caches[0].l2 is not None and caches[0].l2.is_cluster
    assert isinstance(caches[0].l2.pipeline, ClusterPipeline)
    await caches[0].l2.client.flushall(target_nodes=RedisCluster.ALL_NODES)
    yield caches
    for c in caches:
        await c.aclose()
        assert c.l2 is not None
        await c.l2.aclose()


async def test_read_path_and_pipelined_gets_across_slots(
    cluster_caches: list[LayeredCache],
) -> None:
    a, b = cluster_caches

    async def load(key: str) -> str:
        return key.upper()

    keys = [f"cl:{i}" for i in range(300)]  # spread over all three masters
    assert await a.get_many(keys, load) == [k.upper() for k in keys]
    assert b.l2 is not None
    raw = await b.l2.mget(keys)
    assert all(r is not None for r in raw)
    assert await b.get_many(keys) == [k.upper() for k in keys]
    assert b.stats.snapshot()["layers"]["l2"]["hit"] == 300


async def test_invalidation_by_key_tag_and_prefix_on_a_cluster(
    cluster_caches: list[LayeredCache],
) -> None:
    a, b = cluster_caches
    assert a.l2 is not None and b.l2 is not None
    async with (
        InvalidationBus(a.l2.client, a, block_ms=100) as bus_a,
        InvalidationBus(b.l2.client, b, block_ms=100),
    ):
        for i in range(30):
            await a.set(f"pfx:{i}", i, tags=["grp"] if i < 10 else ())
        assert await b.get("pfx:5") == 5 and await b.get("pfx:25") == 25
        result = await bus_a.invalidate_and_wait(tags=["grp"], timeout_s=5)
        assert result is not None and result.complete
        assert "pfx:5" not in b.l1 and await b.get("pfx:5") is None
        result = await bus_a.invalidate_and_wait(prefixes=["pfx:"], timeout_s=5)
        assert result is not None and result.complete
        assert "pfx:25" not in b.l1
        assert await b.l2.mget([f"pfx:{i}" for i in range(30)]) == [None] * 30


def test_url_scheme_selects_the_client() -> None:
    assert isinstance(client_from_url("redis+cluster://127.0.0.1:1"), RedisCluster)
    assert not isinstance(client_from_url("redis://127.0.0.1:1"), RedisCluster)
    asyncio.run(asyncio.sleep(0))
