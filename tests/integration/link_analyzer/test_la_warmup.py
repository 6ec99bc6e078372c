"""POST /admin/cache/warmup on the shipped control plane (no test-registered loader): the link
analyzer's recent and hot results reach a real agent-hosted L1 through the invalidation stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from la_fakes import FakeGemini, Origin, start_control_plane

from agent.cache_host import AgentCache
from agent.settings import AgentCacheConfig, Secret
from control_plane.appkeys import CACHE
from haetae.cache import Layer, Outcome
from link_analyzer.api import LINK_ANALYZER
from link_analyzer.cache import analysis_key, metadata_key
from link_analyzer.urls import canonicalize

Client = TestClient[Any, Any]


@pytest.fixture
async def plane(
    aiohttp_client: Callable[..., Awaitable[Client]],
    db_dsn: str,
    redis_url: str,
    redis_client: Any,
    tmp_path: Path,
    fake_gemini: FakeGemini,
) -> tuple[Client, dict[str, str]]:
    return await start_control_plane(
        aiohttp_client,
        db_dsn=db_dsn,
        redis_url=redis_url,
        tmp_path=tmp_path,
        gemini_url=fake_gemini.base_url,
        sync_deadline_s=5.0,
    )


@pytest.fixture
async def agent_l1(redis_url: str, tmp_path: Path) -> AsyncIterator[AgentCache]:
    """The agent's L1 as ``haetae agent`` runs it (unix socket, L2, invalidation follower)."""
    cfg = AgentCacheConfig(
        enabled=True,
        redis_url=Secret(redis_url),
        unix_socket=None,
        port=None,
        max_entries=10_000,
        max_bytes=64 * 1024 * 1024,
        ttl_s=300.0,
        l2_timeout_ms=500.0,
    )
    async with AgentCache(cfg, tmp_path, node_id="agent-warm-test") as cache:
        yield cache


async def finished(client: Client, admin: dict[str, str], location: str) -> dict[str, Any]:
    for _ in range(500):
        job: dict[str, Any] = await (await client.get(location, headers=admin)).json()
        if job["status"] == "finished":
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"warm-up job did not finish: {job}")


async def test_recent_results_reach_the_agent_l1(
    plane: tuple[Client, dict[str, str]], origin: Origin, agent_l1: AgentCache
) -> None:
    client, admin = plane
    url = origin.url("/article")
    resp = await client.post("/api/v1/analyze", json={"url": url}, headers=admin)
    assert resp.status == 200, await resp.text()
    content_hash = (await resp.json())["content_hash"]
    meta, ai = metadata_key(canonicalize(url).key), analysis_key(content_hash)
    assert meta not in agent_l1.cache.l1 and ai not in agent_l1.cache.l1

    resp = await client.post(
        "/admin/cache/warmup",
        json={"source": "recent", "namespace": "la", "limit": 10},
        headers=admin,
    )
    assert resp.status == 202, await resp.text()
    job = await finished(client, admin, resp.headers["Location"])
    assert job["source"] == "recent:la" and job["error"] is None
    assert job["failed"] == 0 and job["done"] == job["total"] >= 2
    # The agent confirmed the warm entry, which it does only after copying the keys from L2.
    assert "agent-warm-test" in job["l1s"]["applied"] and job["l1s"]["pending"] == []
    assert meta in agent_l1.cache.l1 and ai in agent_l1.cache.l1
    assert agent_l1.bus is not None and agent_l1.bus.warmed_keys >= 2

    # Any Redis client on the agent's socket reads it from the L1: an L1 hit, no L2 lookup.
    stats = agent_l1.cache.stats
    l2_before = sum(n for (layer, _), n in stats.counts.items() if layer == Layer.L2)
    hits_before = agent_l1.cache.l1.hits
    app_client = aioredis.Redis(unix_socket_path=str(agent_l1.unix_path), protocol=3)
    try:
        assert await app_client.exists(meta, ai) == 2
    finally:
        await app_client.aclose()
    assert agent_l1.cache.l1.hits == hits_before + 2
    assert sum(n for (layer, _), n in stats.counts.items() if layer == Layer.L2) == l2_before
    assert stats.counts[Layer.L2, Outcome.MISS] == 0


async def test_hot_keys_and_named_keys_of_the_link_analyzer(
    plane: tuple[Client, dict[str, str]], origin: Origin, agent_l1: AgentCache
) -> None:
    client, admin = plane
    url = origin.url("/article")
    for _ in range(3):  # the second and third read the cache: la keys become hot
        resp = await client.post("/api/v1/analyze", json={"url": url}, headers=admin)
        assert resp.status == 200, await resp.text()
    meta = metadata_key(canonicalize(url).key)
    service = client.app[LINK_ANALYZER]
    assert meta in [k for k, _ in service.cache.cache.stats.hot.top("la", 10)]

    resp = await client.post(
        "/admin/cache/warmup", json={"source": "hot", "namespace": "la"}, headers=admin
    )
    assert resp.status == 202, await resp.text()
    job = await finished(client, admin, resp.headers["Location"])
    assert job["source"] == "hot:la" and job["done"] >= 1
    assert meta in agent_l1.cache.l1

    # Named keys: the one L2 holds is warmed, the one it does not is reported, not invented.
    agent_l1.cache.flush_l1()
    missing = metadata_key("0" * 32)
    resp = await client.post("/admin/cache/warmup", json={"keys": [meta, missing]}, headers=admin)
    assert resp.status == 202, await resp.text()
    job = await finished(client, admin, resp.headers["Location"])
    assert job["done"] == 1 and job["failed_keys"] == [missing]
    assert meta in agent_l1.cache.l1 and missing not in agent_l1.cache.l1


async def test_shipped_namespaces_and_sources(plane: tuple[Client, dict[str, str]]) -> None:
    client, admin = plane
    assert client.app[CACHE].warmer.namespaces == ["la"]
    assert client.app[CACHE].warmer.sources("la") == ["hot", "recent"]
    # Nothing analysed yet: a 400 that says so, not an empty job.
    resp = await client.post(
        "/admin/cache/warmup", json={"source": "recent", "namespace": "la"}, headers=admin
    )
    assert resp.status == 400
    assert (await resp.json())["field"] == "body.namespace"
