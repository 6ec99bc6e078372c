"""Fewer Redis round trips per analysis: lease and ledger on the cache's auto-pipeline, the
lease claimed with the answer checked in one script; the fetcher's sharded connection pools."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer
from la_fakes import LOOPBACK_POLICY, FakeGemini, Origin, analyzer_config

from link_analyzer.cache import LayeredAnalysisCache
from link_analyzer.fetch import Fetcher, FetchLimits
from link_analyzer.ledger import CostLedger, Usage
from link_analyzer.service import LinkAnalyzerService
from link_analyzer.singleflight import AnalysisLease


async def test_lease_on_the_pipeline_exclusive_and_checks_the_answer(
    redis_client: aioredis.Redis,
) -> None:
    cache = LayeredAnalysisCache.build(redis_client, follow=False)
    try:
        # Two workers' leases (each its own pipeline connection would be the same: one Redis).
        a = AnalysisLease(redis_client, pipeline=cache.commands)
        b = AnalysisLease(redis_client)
        answer = cache.analysis_l2_key("h1")
        assert answer is not None
        await redis_client.script_flush()  # NOSCRIPT: loaded by EVAL on first use
        token, answered = await a.acquire_unless("h1", 5.0, answer)
        assert token is not None and not answered
        assert await b.acquire("h1", 5.0) is None
        assert await a.acquire_unless("h1", 5.0, answer) == (None, False)
        await cache.put_analysis("h1", {"status": "done"}, 60)
        await a.release("h1", token)
        assert not await a.held("h1")
        # The answer is there: no lease taken.
        assert await b.acquire_unless("h1", 5.0, answer) == (None, True)
        assert not await a.held("h1")
        # Release only by the owner.
        other = await b.acquire("h2", 5.0)
        assert other is not None
        await a.release("h2", "not-the-token")
        assert await a.held("h2")
    finally:
        await cache.aclose()


async def test_ledger_on_the_pipeline_exact(redis_client: aioredis.Redis) -> None:
    cache = LayeredAnalysisCache.build(redis_client, follow=False)
    try:
        ledger = CostLedger(redis_client, pipeline=cache.commands)
        await redis_client.script_flush()
        usage = Usage("m", prompt_tokens=1000, output_tokens=100, total_tokens=1100)
        costs = await asyncio.gather(*(ledger.record(f"u{i % 3}", usage) for i in range(30)))
        assert (await ledger.for_url("u0"))["calls"] == 10
        per_url = [await ledger.for_url(f"u{i}") for i in range(3)]
        assert sum(u["cost_micros"] for u in per_url) == sum(costs)
        assert len(await ledger.recent_calls(100)) == 30
    finally:
        await cache.aclose()


async def test_uncached_analysis_round_trips(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    async with LinkAnalyzerService(analyzer_config(fake_gemini.base_url), redis_client) as svc:
        pipe = svc.cache.commands
        assert pipe is not None
        await svc.analyzer.analyze(origin.url("/article"))  # connections, scripts loaded
        first = await svc.analyzer.analyze(origin.url("/news/other"))
        await svc.cache.invalidate(first["url_hash"])  # its content's analysis too
        before = pipe.batches  # type: ignore[attr-defined]
        fresh = await svc.analyzer.analyze(origin.url("/news/third"))
        uncached = pipe.batches - before  # type: ignore[attr-defined]
    assert fresh["cached"]["analysis"] is False
    # metadata get + put, analysis get, the lease claimed with the answer checked (was: lease,
    # then a re-check), ledger, analysis put, release: 7 (was 8), all on the auto-pipeline
    # (the lease and the ledger were three redis-py round trips of their own).
    assert uncached <= 7, uncached


async def test_sharded_pools_reuse_per_origin_and_bound_in_flight(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    now = peak = 0

    async def page(request: web.Request) -> web.Response:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.05)
        now -= 1
        return web.Response(
            text="<html><head><title>t</title></head></html>", content_type="text/html"
        )

    servers = []
    for _ in range(2):
        app = web.Application()
        app.router.add_get("/{n}", page)
        servers.append(await aiohttp_server(app))
    limits = dataclasses.replace(
        FetchLimits(), per_host_concurrency=10, per_host_rate_per_s=None, max_connections=3
    )
    async with Fetcher(limits, LOOPBACK_POLICY) as f:
        for i in range(3):
            for s in servers:
                await f.fetch_json(str(s.make_url(f"/{i}")))
        pool = f._client._transport._pool  # type: ignore[attr-defined]
        # Keep-alive: one connection per origin, each in its origin's shard.
        assert len(pool.connections) == 2
        assert sum(1 for p in pool.pools if p.connections) in (1, 2)
        got = await asyncio.gather(
            *(f.fetch_html(str(servers[0].make_url(f"/b{i}"))) for i in range(12))
        )
    assert all(r.status == 200 for r in got)
    assert peak <= 3


async def test_unreadable_stored_answer_falls_back_to_the_lease(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    async with LinkAnalyzerService(analyzer_config(fake_gemini.base_url), redis_client) as svc:
        first = await svc.analyzer.analyze(origin.url("/article"))
        await svc.cache.invalidate(first["url_hash"])
        key = svc.cache.analysis_l2_key(first["content_hash"])
        assert key is not None
        await redis_client.set(key, b"x")  # a record this version cannot read
        again = await svc.analyzer.analyze(origin.url("/article"))
    assert again["cached"] == {"metadata": False, "analysis": False}
    assert again["ai"]["status"] == "done" and len(fake_gemini.requests) == 2
