"""The agent with its cache enabled: its L1 served over RESP on a unix socket (and a loopback
port) to redis-py, reading through to the real Redis, following invalidations published by
another L1, reporting its stats, and starting even when Redis is down."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from agent_peers import ENROLMENT_TOKEN, FakeControlPlane
from redis.exceptions import ResponseError

from agent import Agent, AgentConfig
from haetae.cache import EvictionReason, InvalidationBus, L1Cache, LayeredCache, RedisL2


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A unix socket path must fit in 108 bytes; pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="hc-agent-") as d:
        yield Path(d)


def _config(tmp_path: Path, cp_url: str, sock: Path, redis_url: str) -> AgentConfig:
    return AgentConfig(
        agent_id="cache-1",
        interval_s=1.0,
        state_dir=tmp_path / "state",
        collectors=[],
        http={"host": "127.0.0.1", "port": 0},
        control_plane={"url": cp_url, "enrolment_token": ENROLMENT_TOKEN, "request_timeout_s": 1},
        cache={
            "enabled": True,
            "redis_url": redis_url,
            "unix_socket": sock,
            "port": 0,
            "ttl_s": 60,
        },
    )


@pytest.fixture
async def peer(
    redis_client: aioredis.Redis, redis_url: str
) -> AsyncIterator[tuple[LayeredCache, InvalidationBus]]:
    """Another L1 on the same Redis, as the control plane's cache is."""
    cache = LayeredCache(L1Cache(1000, 1 << 20), RedisL2(aioredis.Redis.from_url(redis_url)))
    follower = aioredis.Redis.from_url(redis_url)
    async with InvalidationBus(follower, cache, block_ms=100) as bus:
        yield cache, bus
    await follower.aclose()
    await cache.aclose()
    assert cache.l2 is not None
    await cache.l2.aclose()


def _samples(report: dict[str, Any], name: str) -> dict[str, float]:
    return {
        ",".join(f"{k}={v}" for k, v in sorted(s["labels"].items())): s["value"]
        for s in report["samples"]
        if s["name"] == name
    }


async def test_agent_serves_its_l1_follows_invalidations_and_reports_stats(
    control_plane: tuple[FakeControlPlane, str],
    peer: tuple[LayeredCache, InvalidationBus],
    redis_url: str,
    tmp_path: Path,
    short_dir: Path,
) -> None:
    cp, cp_url = control_plane
    peer_cache, peer_bus = peer
    sock = short_dir / "l1.sock"
    async with Agent(_config(tmp_path, cp_url, sock, redis_url)) as agent:
        assert agent.cache is not None and agent.cache.bus is not None
        assert sock.is_socket()
        r = aioredis.Redis(unix_socket_path=str(sock))
        try:
            assert await r.set("user:1", b"ada", ex=100)
            assert await r.get("user:1") == b"ada"
            assert 0 < await r.ttl("user:1") <= 100
            assert await r.mget("user:1", "user:2") == [b"ada", None]
            assert await r.delete("user:1") == 1
            assert await r.get("user:1") is None
            # A miss reads through to the L2 another L1 wrote, and is then held in this L1.
            await peer_cache.set("page:home", "v1")
            assert await r.get("page:home") == b"v1"
            assert "page:home" in agent.cache.cache.l1
            # An invalidation by the other L1 returns once the agent's L1 has applied it.
            result = await peer_bus.invalidate_and_wait(["page:home"], timeout_s=5)
            assert result is not None and result.complete
            assert agent.cache.bus.node_id in result.applied
            assert "page:home" not in agent.cache.cache.l1
            assert await r.get("page:home") is None
        finally:
            await r.aclose()
        port = agent.cache.port
        assert port
        tcp = aioredis.Redis(host="127.0.0.1", port=port)
        try:
            assert await tcp.ping()
        finally:
            await tcp.aclose()

        await agent.collect_once()
        await cp.wait_for(1, within_s=5)
    assert not sock.exists()
    report = cp.stored[-1]
    hits = _samples(report, "haetae_cache_hits_total")
    misses = _samples(report, "haetae_cache_misses_total")
    assert hits["layer=l1"] >= 3 and misses["layer=l1"] >= 2
    assert hits["layer=l2"] >= 1
    assert _samples(report, "haetae_cache_entries") == {"layer=l1": 0}
    assert "layer=l1" in _samples(report, "haetae_cache_bytes")
    assert _samples(report, "haetae_cache_l2_breaker_open") == {"layer=l2": 0}
    evictions = _samples(report, "haetae_cache_evictions_total")
    assert set(evictions) == {f"layer=l1,reason={r.value}" for r in EvictionReason}
    # The series every haetae cache exports, which the CacheHitRatioDrop rule reads.
    requests = _samples(report, "haetae_cache_requests_total")
    (l1_hit,) = [k for k in requests if k.endswith("layer=l1,outcome=hit")]
    assert l1_hit.startswith("cache=") and requests[l1_hit] == hits["layer=l1"]
    assert {k.split(",", 1)[1] for k in requests} >= {
        "layer=l1,outcome=miss",
        "layer=l2,outcome=hit",
    }


async def test_agent_starts_with_redis_down_and_keeps_serving(
    control_plane: tuple[FakeControlPlane, str], tmp_path: Path, short_dir: Path
) -> None:
    _, cp_url = control_plane
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
        sock = short_dir / "l1.sock"
        async with asyncio.timeout(10), Agent(_config(tmp_path, cp_url, sock, down)) as agent:
            assert agent.cache is not None and agent.cache.bus is not None
            assert not agent.cache.bus.connected
            r = aioredis.Redis(unix_socket_path=str(sock))
            try:
                assert await r.ping()
                assert await r.get("k") is None
                # A write the other L1s could not hear of is refused (the client may retry),
                # and the connection survives it.
                with pytest.raises(ResponseError, match="cannot record the invalidation"):
                    await r.set("k", b"v")
                assert await r.mget("k", "j") == [None, None]
            finally:
                await r.aclose()
            cycle = await agent.collect_once()
            assert cycle is not None
            assert {run.name: run.ok for run in cycle.collectors} == {"cache": True}
