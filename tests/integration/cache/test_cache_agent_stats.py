"""A real agent with its cache enabled, reporting to the real control plane: its L1 follows the
control plane's invalidations, and GET /admin/cache/stats shows its L1 from the reports."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from agent import Agent, AgentConfig
from control_plane.api.cache import agent_cache_stats, reported_caches
from control_plane.appkeys import CACHE, INGESTOR
from control_plane.auth import TokenKind
from control_plane.auth.middleware import TOKEN_STORE
from control_plane.cache_ctx import SELF_AGENT_ID, self_report
from control_plane.ingest.windows import SeriesRef, SeriesWindows
from haetae.cache import EvictionReason

if TYPE_CHECKING:
    # Type only: a bare ``conftest`` import resolves to whichever conftest pytest loaded first.
    from conftest import CachePlane


async def _agent_stats(plane: CachePlane, agent_id: str, within_s: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(within_s):
        while True:
            resp = await plane.client.get("/admin/cache/stats", headers=plane.admin())
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            if agent_id in body["agents"]:
                return body
            await asyncio.sleep(0.05)


async def test_stats_show_an_agents_l1_after_its_reports(
    cache_plane: CachePlane, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    enrolment, _ = await cache_plane.app[TOKEN_STORE].create(TokenKind.ENROLMENT, "agent")
    with tempfile.TemporaryDirectory(prefix="hc-cp-") as d:
        sock = Path(d) / "l1.sock"
        config = AgentConfig(
            agent_id="edge-1",
            state_dir=tmp_path / "agent",
            collectors=[],
            http={"port": 0},
            control_plane={
                "url": str(cache_plane.client.make_url("")),
                "enrolment_token": enrolment,
            },
            cache={"enabled": True, "redis_url": redis_url, "unix_socket": sock},
        )
        async with Agent(config) as agent:
            r = aioredis.Redis(unix_socket_path=str(sock))
            try:
                await r.set("page:home", b"v1")
                assert await r.get("page:home") == b"v1"
                assert await r.get("page:none") is None
                # The control plane's invalidation returns once the agent's L1 applied it.
                resp = await cache_plane.client.post(
                    "/admin/cache/invalidate",
                    json={"keys": ["page:home"]},
                    headers=cache_plane.admin(),
                )
                assert resp.status == 200, await resp.text()
                assert "agent-edge-1" in (await resp.json())["applied"]
                assert await r.get("page:home") is None
            finally:
                await r.aclose()
            assert await agent.collect_once() is not None
            body = await _agent_stats(cache_plane, "edge-1")
    l1 = body["agents"]["edge-1"]["l1"]
    assert l1["hits"] == 1 and l1["misses"] == 2
    assert l1["hit_ratio"] == 1 / 3
    assert l1["entries"] == 0 and "bytes" in l1
    assert l1["window_s"] == 60.0
    assert set(l1["evictions"]) == {reason.value for reason in EvictionReason}
    assert set(body["agents"]["edge-1"]) == {"l1", "l2"}


def _ref(sid: int, agent: str, name: str, **labels: str) -> SeriesRef:
    return SeriesRef(sid, agent, name, labels)


def test_window_hit_ratio_counts_increases_and_restarts() -> None:
    windows = SeriesWindows(window_seconds=3600, max_points=100)
    hits = _ref(1, "a", "haetae_cache_hits_total", layer="l1")
    misses = _ref(2, "a", "haetae_cache_misses_total", layer="l1")
    entries = _ref(3, "a", "haetae_cache_entries", layer="l1")
    other = _ref(4, "b", "haetae_cache_hits_total", layer="l1")
    windows.add(
        [
            # Before the 60 s window: the baseline its first increase is measured from.
            (hits, 900, 100),
            (misses, 900, 100),
            (hits, 950, 130),
            (misses, 950, 110),
            # The agent restarted: counters start again from zero.
            (hits, 990, 6),
            (misses, 990, 0),
            (entries, 990, 42),
            (other, 990, 5),
        ],
        now=1000,
    )
    stats = agent_cache_stats(windows, now=1000, window_s=60)
    a = stats["a"]["l1"]
    assert a["hits"] == 6 and a["misses"] == 0 and a["entries"] == 42
    assert a["hit_ratio"] == 1.0
    assert a["reported_at"] == 990
    # Window: hits 30 + 6, misses 10 + 0.
    assert a["window_hit_ratio"] == 36 / 46
    assert "misses" not in stats["b"]["l1"]
    assert stats["b"]["l1"]["hit_ratio"] == 1.0


def test_reported_caches_read_the_requests_series_and_skip_them_in_the_agent_view() -> None:
    windows = SeriesWindows(window_seconds=3600, max_points=100)
    name = "haetae_cache_requests_total"
    hit = _ref(1, "a", name, cache="demo", layer="l1", outcome="hit")
    miss = _ref(2, "a", name, cache="demo", layer="l1", outcome="miss")
    stale = _ref(3, "a", name, cache="demo", layer="l2", outcome="stale")
    error = _ref(4, "a", name, cache="demo", layer="l2", outcome="error")
    # A named cache's sizes (an app's haetae.cache scraped): not the agent-hosted L1's.
    demo_entries = _ref(5, "a", "haetae_cache_entries", cache="demo", layer="l1")
    windows.add(
        [
            (hit, 900, 50),
            (miss, 900, 50),
            (hit, 990, 80),
            (miss, 990, 60),
            (stale, 990, 3),
            (error, 990, 1),
            (demo_entries, 990, 7),
        ],
        now=1000,
    )
    caches = reported_caches(windows, now=1000, window_s=60)
    l1 = caches["a"]["demo"]["l1"]
    assert l1["lookups"] == 140 and l1["hits"] == 80 and l1["hit_ratio"] == 80 / 140
    assert l1["window_hit_ratio"] == 30 / 40
    l2 = caches["a"]["demo"]["l2"]
    assert l2["lookups"] == 4 and l2["hits"] == 3
    assert agent_cache_stats(windows, now=1000, window_s=60) == {}


async def test_the_control_planes_cache_is_ingested_as_series(cache_plane: CachePlane) -> None:
    """Its counters become haetae_cache_requests_total{cache="control_plane"} of agent
    ``control-plane`` in the ingest windows (what the rules read), shown under ``reported``."""
    service = cache_plane.app[CACHE]

    async def page(key: str) -> str:
        return key

    service.register_loader("page", page)
    await service.cache.get("page:a")
    await service.cache.get("page:a")
    reporter = asyncio.create_task(self_report(cache_plane.app, interval_s=0.05))
    try:
        windows = cache_plane.app[INGESTOR].windows
        async with asyncio.timeout(10):
            for _ in iter(lambda: not windows.select("haetae_cache_requests_total"), False):
                await asyncio.sleep(0.05)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    refs = windows.select("haetae_cache_requests_total")
    assert {r.agent_id for r in refs} == {SELF_AGENT_ID}
    labels = {(r.labels["layer"], r.labels["outcome"]) for r in refs}
    assert {("l1", "hit"), ("l1", "miss"), ("l2", "miss"), ("loader", "hit")} <= labels
    resp = await cache_plane.client.get("/admin/cache/stats", headers=cache_plane.admin())
    l1 = (await resp.json())["reported"][SELF_AGENT_ID]["control_plane"]["l1"]
    assert l1["lookups"] == 2 and l1["hits"] == 1
