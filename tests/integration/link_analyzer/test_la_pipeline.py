"""The whole pipeline on real Redis, a fake origin and a fake Gemini: cache, dedup, filters."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from la_fakes import ANSWER, FakeGemini, Origin, analyzer_config
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from link_analyzer.service import LinkAnalyzerService


async def test_cached_second_time_and_cost_booked(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    async with LinkAnalyzerService(analyzer_config(fake_gemini.base_url), redis_client) as svc:
        first = await svc.analyzer.analyze(origin.url("/article?utm_source=x"))
        second = await svc.analyzer.analyze(origin.url("/article"))
        stats = await svc.cache.stats()
        booked = await svc.ledger.for_url(first["url_hash"])
        sample = svc.metrics.registry.get_sample_value
        assert sample("haetae_link_analyses_total", {"result": "analysed"}) == 1
        assert sample("haetae_link_analyses_total", {"result": "cached"}) == 1
        assert sample("haetae_link_gemini_tokens_total", {"kind": "output"}) == 50
    assert first["ai"]["status"] == "done" and first["ai"]["analysis"] == ANSWER
    assert first["cached"] == {"metadata": False, "analysis": False}
    assert second["cached"] == {"metadata": True, "analysis": True}
    assert second["url_hash"] == first["url_hash"]
    assert origin.hits["/article"] == 1 and len(fake_gemini.requests) == 1
    # The item's image went into the same call as its text.
    assert first["ai"]["media_items"] == 1
    assert len(fake_gemini.requests[0]["contents"][0]["parts"]) == 2
    assert booked["calls"] == 1 and booked["cost_micros"] > 0
    assert stats["layers"]["metadata"] == {"hits": 1, "misses": 1, "hit_rate": 0.5}


async def test_same_content_analysed_once_across_urls_and_concurrency(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    fake_gemini.delay_s = 0.3  # the calls overlap: single-flight must hold the others back
    async with LinkAnalyzerService(analyzer_config(fake_gemini.base_url), redis_client) as svc:
        reports = await asyncio.gather(
            *(svc.analyzer.analyze(origin.url(f"/news/story-{i}")) for i in range(6))
        )
        # Content unchanged: a forced refresh re-fetches but does not re-analyse.
        again = await svc.analyzer.analyze(origin.url("/news/story-0"), refresh=True)
        reused = svc.metrics.registry.get_sample_value(
            "haetae_link_analyses_total", {"result": "reused"}
        )
    assert reused == 6  # five waited for the one call, plus the refresh
    assert len({r["url_hash"] for r in reports}) == 6
    assert len({r["content_hash"] for r in reports}) == 1
    assert all(r["ai"]["analysis"] == ANSWER for r in reports)
    assert len(fake_gemini.requests) == 1
    assert again["cached"] == {"metadata": False, "analysis": True}


async def test_without_key_ai_stage_is_disabled(
    redis_client: aioredis.Redis, origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    async with LinkAnalyzerService(analyzer_config(None), redis_client) as svc:
        assert not svc.ai_enabled
        report = await svc.analyzer.analyze(origin.url("/watch"))
    assert report["ai"] == {"status": "disabled", "reason": "GEMINI_API_KEY is not set"}
    assert report["metadata"]["title"].startswith("Rick Astley")


async def test_login_wall_and_empty_never_reach_the_model(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    async with LinkAnalyzerService(analyzer_config(fake_gemini.base_url), redis_client) as svc:
        walled = await svc.analyzer.analyze(origin.url("/p/abc/"))
        empty = await svc.analyzer.analyze(origin.url("/empty"))
    assert walled["quality"]["verdict"] == "login-wall" and walled["ai"]["status"] == "skipped"
    assert empty["quality"]["verdict"] == "empty" and empty["ai"]["status"] == "skipped"
    assert fake_gemini.requests == []


async def test_cache_down_degrades_to_miss(
    origin: Origin, fake_gemini: FakeGemini, redis_url: str
) -> None:
    # A Redis nobody listens on: cache lookups fail, the analysis itself still works.
    dead = aioredis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    cfg = analyzer_config(fake_gemini.base_url)
    try:
        async with LinkAnalyzerService(cfg, dead) as svc:
            report = await svc.analyzer.analyze(origin.url("/article"))
            assert svc.cache.errors > 0
    finally:
        await dead.aclose()
    assert report["ai"]["status"] == "done"


async def test_oembed_fills_a_silent_player_page(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    async with LinkAnalyzerService(analyzer_config(fake_gemini.base_url), redis_client) as svc:
        report = await svc.analyzer.analyze(origin.url("/player"))
    meta = report["metadata"]
    assert meta["title"] == "고양이가 피아노를 치는 영상" and meta["author"] == "catpiano"
    assert meta["images"] == [origin.url("/img/thumb.jpg")]
    assert "oembed" in meta["sources"] and origin.hits["/oembed"] == 1
    assert report["quality"]["verdict"] == "ok" and report["ai"]["status"] == "done"
    assert report["ai"]["media_items"] == 1  # the thumbnail went to the model with the text


async def test_short_link_resolved_once_then_from_cache(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[str] = []

    async def one_hop(url: str) -> str:  # what vm.tiktok.com answers with its 301
        hops.append(url)
        return "https://www.tiktok.com/@cat/video/7234567890123456789?is_from_webapp=1"

    async with LinkAnalyzerService(analyzer_config(None), redis_client) as svc:
        monkeypatch.setattr(svc.fetcher, "resolve_redirect", one_hop)
        first = await svc.analyzer.resolve("https://vm.tiktok.com/ZMhvqKp7x/")
        second = await svc.analyzer.resolve("https://vm.tiktok.com/ZMhvqKp7x/?utm_source=x")
    assert first == second
    assert first.identity == "tiktok:item:7234567890123456789"
    assert first.url == "https://www.tiktok.com/@cat/video/7234567890123456789"
    assert hops == ["https://vm.tiktok.com/ZMhvqKp7x/"]
