"""The link-analyzer routes on the real control-plane app: auth, bad input, sync and async."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from la_fakes import ANSWER, FakeGemini, Origin, start_control_plane
from tests_support import assert_problem

from link_analyzer import ssrf
from link_analyzer.api import LINK_ANALYZER
from link_analyzer.runner import run_worker

Client = TestClient[Any, Any]


@pytest.fixture
async def api(
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
        sync_deadline_s=2.0,
    )


async def token_with(client: Client, admin: dict[str, str], scope: str) -> dict[str, str]:
    resp = await client.post(
        "/admin/tokens",
        json={"kind": "admin", "name": f"t-{scope}", "scopes": [scope]},
        headers=admin,
    )
    assert resp.status == 201, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def test_sync_analysis_then_cache_stats_and_delete(
    api: tuple[Client, dict[str, str]], origin: Origin, fake_gemini: FakeGemini
) -> None:
    client, admin = api
    url = origin.url("/article?fbclid=abc")
    resp = await client.post("/api/v1/analyze", json={"url": url}, headers=admin)
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["ai"]["analysis"] == ANSWER and report["cached"]["metadata"] is False

    started = time.monotonic()
    resp = await client.post("/api/v1/analyze", json={"url": url}, headers=admin)
    cached = await resp.json()
    assert cached["cached"] == {"metadata": True, "analysis": True}
    assert time.monotonic() - started < 0.5  # the mission's cached-answer bound, loosely
    assert len(fake_gemini.requests) == 1

    stats = await (await client.get("/api/v1/cache/stats", headers=admin)).json()
    assert stats["cache"]["layers"]["metadata"]["hits"] == 1
    # The layered (haetae.cache) view: the second request was an L1 hit, no Redis round trip.
    layered = stats["cache"]["layered"]
    assert layered["cache"] == "link_analyzer" and layered["layers"]["l1"]["hits"] >= 2
    assert stats["cache"]["following_invalidations"] is True
    assert stats["cache"]["node"] in stats["cache"]["nodes"]
    assert stats["ai"]["enabled"] is True and stats["ai"]["cost_today"]["calls"] == 1

    exposition = await (await client.get("/metrics")).text()
    assert 'haetae_link_analyses_total{result="analysed"} 1.0' in exposition
    assert 'haetae_link_analyses_total{result="cached"} 1.0' in exposition
    assert 'haetae_link_analysis_failures_total{reason="ssrf-refused"} 0.0' in exposition

    resp = await client.delete(f"/api/v1/cache/{report['url_hash']}", headers=admin)
    assert resp.status == 204
    await assert_problem(
        await client.delete(f"/api/v1/cache/{report['url_hash']}", headers=admin), 404
    )
    again = await (await client.post("/api/v1/analyze", json={"url": url}, headers=admin)).json()
    assert again["cached"] == {"metadata": False, "analysis": False}


async def test_async_analysis_runs_on_a_worker(
    api: tuple[Client, dict[str, str]], origin: Origin, redis_url: str
) -> None:
    client, admin = api
    body = {"url": origin.url("/watch"), "priority": "high"}
    resp = await client.post("/api/v1/analyze/async", json=body, headers=admin)
    assert resp.status == 202
    accepted = await resp.json()
    assert resp.headers["Location"] == accepted["status_url"]
    dup = await (await client.post("/api/v1/analyze/async", json=body, headers=admin)).json()
    assert dup["task_id"] == accepted["task_id"] and dup["deduplicated"] is True

    status = await (await client.get(accepted["status_url"], headers=admin)).json()
    assert status["status"] == "queued" and status["priority"] == "high"

    cfg = client.app[LINK_ANALYZER].config
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(cfg, redis_url, stop=stop, concurrency=2))
    try:
        deadline = time.monotonic() + 10
        while status["status"] != "done" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            status = await (await client.get(accepted["status_url"], headers=admin)).json()
    finally:
        stop.set()
        await worker
    assert status["status"] == "done", status
    assert status["result"]["metadata"]["title"].startswith("Rick Astley")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "javascript:alert(1)"}, "body.url"),
        ({"url": "file:///etc/passwd"}, "body.url"),
        ({"url": "data:text/html,hi"}, "body.url"),
        ({"url": "http://"}, "body.url"),
        ({"url": 42}, "body.url"),
        ({}, "body.url"),
        ({"url": "https://e.com", "refresh": "yes"}, "body.refresh"),
        ({"url": "https://e.com", "refresh": 1}, "body.refresh"),
        ({"url": "https://e.com", "bogus": 1}, "body.bogus"),
        ([1, 2], "body"),
        # Bare words: no public host could answer; refused before any DNS lookup.
        ({"url": "not-a-number"}, "body.url"),
        ({"url": "https://intranet-wiki/page"}, "body.url"),
        ({"url": "https://e.com/a\u0000b"}, "body.url"),
        ({"url": "https://e\u0000.com/"}, "body.url"),
        ({"url": ["https://e.com"]}, "body.url"),
        ({"url": {"href": "https://e.com"}}, "body.url"),
        ({"url": "https://e.com/" + "a" * 5000}, "body.url"),
    ],
)
async def test_bad_input_is_problem_json(
    api: tuple[Client, dict[str, str]], body: Any, field: str
) -> None:
    client, admin = api
    for path in ("/api/v1/analyze", "/api/v1/analyze/async"):
        got = await assert_problem(await client.post(path, json=body, headers=admin), 400)
        assert got["field"] == field


async def test_more_bad_input_and_refusals(
    api: tuple[Client, dict[str, str]], origin: Origin
) -> None:
    client, admin = api
    resp = await client.post("/api/v1/analyze", data=b"{not json", headers=admin)
    await assert_problem(resp, 400)
    resp = await client.post(
        "/api/v1/analyze/async", json={"url": "https://e.com", "priority": "urgent"}, headers=admin
    )
    assert (await assert_problem(resp, 400))["field"] == "body.priority"
    for priority in (["high"], {"high": 1}, 0, None):
        resp = await client.post(
            "/api/v1/analyze/async",
            json={"url": "https://e.com", "priority": priority},
            headers=admin,
        )
        assert (await assert_problem(resp, 400))["field"] == "body.priority"
    # The sync route takes no priority (it queues at high priority past its deadline).
    resp = await client.post(
        "/api/v1/analyze", json={"url": "https://e.com", "priority": "low"}, headers=admin
    )
    assert (await assert_problem(resp, 400))["field"] == "body.priority"
    await assert_problem(await client.get("/api/v1/analyze/status/nothex", headers=admin), 400)
    for bad in ("a%00b", "f" * 25, "%C2%B2" * 12):
        for path in ("/api/v1/analyze/status/", "/api/v1/cache/"):
            method = client.get if "status" in path else client.delete
            got = await assert_problem(await method(path + bad, headers=admin), 400)
            assert got["field"].startswith("path")
    await assert_problem(await client.get("/api/v1/analyze/status/" + "0" * 24, headers=admin), 404)
    await assert_problem(await client.delete("/api/v1/cache/short", headers=admin), 400)
    # Private targets are refused by the guard (the test policy allows loopback only).
    resp = await client.post("/api/v1/analyze", json={"url": "http://10.0.0.1/"}, headers=admin)
    assert (await assert_problem(resp, 422))["type"].endswith("ssrf-refused")
    resp = await client.post(
        "/api/v1/analyze", json={"url": origin.url("/to?to=http://169.254.169.254/")}, headers=admin
    )
    await assert_problem(resp, 422)


async def test_auth_and_scopes(api: tuple[Client, dict[str, str]]) -> None:
    client, admin = api
    body = {"url": "https://e.com/"}
    await assert_problem(await client.post("/api/v1/analyze", json=body), 401)
    await assert_problem(await client.get("/api/v1/cache/stats"), 401)
    reader = await token_with(client, admin, "read")
    writer = await token_with(client, admin, "write")
    assert (await client.get("/api/v1/cache/stats", headers=reader)).status == 200
    await assert_problem(await client.post("/api/v1/analyze/async", json=body, headers=reader), 403)
    await assert_problem(await client.delete("/api/v1/cache/" + "a" * 32, headers=writer), 403)
    await assert_problem(await client.delete("/api/v1/cache/" + "a" * 32, headers=admin), 404)


async def test_sync_deadline_hands_over_to_the_queue(
    api: tuple[Client, dict[str, str]], origin: Origin
) -> None:
    client, admin = api
    url = origin.url("/slow?s=4")  # slower than the 2 s sync deadline of this app
    resp = await client.post("/api/v1/analyze", json={"url": url}, headers=admin)
    assert resp.status == 202
    body = await resp.json()
    assert "continuing as a queued task" in body["detail"]
    status = await (await client.get(body["status_url"], headers=admin)).json()
    assert status["status"] == "queued" and status["priority"] == "high"


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://0xa9fea9fe/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://printer.local/",
        "http://router.home.arpa/",
    ],
)
async def test_internal_targets_refused_alike_by_sync_and_async(
    api: tuple[Client, dict[str, str]], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, admin = api

    async def no_lookup(host: str, port: int) -> list[Any]:
        raise AssertionError(f"{host} was resolved: the static check should have refused it")

    monkeypatch.setattr(ssrf, "resolve", no_lookup)
    for path in ("/api/v1/analyze", "/api/v1/analyze/async"):
        resp = await client.post(path, json={"url": url}, headers=admin)
        got = await assert_problem(resp, 422)
        assert got["type"].endswith("ssrf-refused") and got["field"] == "body.url"
    depth = await client.app[LINK_ANALYZER].queue.depth()
    assert depth["queued"] == 0


async def test_a_bare_word_is_refused_before_any_lookup(
    api: tuple[Client, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, admin = api
    looked_up: list[str] = []

    async def record(host: str, port: int) -> list[Any]:
        looked_up.append(host)
        raise OSError("no such host")

    monkeypatch.setattr(ssrf, "resolve", record)
    for path in ("/api/v1/analyze", "/api/v1/analyze/async"):
        resp = await client.post(path, json={"url": "not-a-number"}, headers=admin)
        got = await assert_problem(resp, 400)
        assert "bare word" in got["detail"]
    assert looked_up == []
