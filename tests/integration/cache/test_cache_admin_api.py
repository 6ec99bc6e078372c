"""/admin/cache/*: stats, invalidation that waits for every L1, warm-up with progress."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio as aioredis
from cache_support import MakeCache
from tests_support import assert_problem

from control_plane.appkeys import CACHE
from haetae.cache import InvalidationBus

if TYPE_CHECKING:  # conftest is not importable by name when several test folders have one
    from conftest import CachePlane


async def page(key: str) -> dict[str, Any]:
    return {"page": key}


async def test_routes_need_an_admin_token(cache_plane: CachePlane) -> None:
    resp = await cache_plane.client.get("/admin/cache/stats")
    await assert_problem(resp, 401)


async def test_stats_show_layers_hosts_and_totals(cache_plane: CachePlane) -> None:
    service = cache_plane.app[CACHE]
    service.register_loader("page", page)
    await service.cache.get("page:x")
    await service.cache.get("page:x")
    resp = await cache_plane.client.get("/admin/cache/stats", headers=cache_plane.admin())
    assert resp.status == 200
    body = await resp.json()
    l1 = body["local"]["layers"]["l1"]
    assert l1["hits"] == 1 and l1["misses"] == 1 and l1["hit_ratio"] == 0.5
    assert body["local"]["layers"]["l2"]["breaker"]["state"] == "closed"
    assert service.bus is not None and service.bus.node_id in body["hosts"]
    assert body["totals"]["l1"]["hits"] >= 1
    metrics = await (await cache_plane.client.get("/metrics")).text()
    assert (
        'haetae_cache_requests_total{cache="control_plane",layer="l1",outcome="hit"} 1.0' in metrics
    )


async def test_invalidate_waits_for_every_connected_l1(
    cache_plane: CachePlane, make_cache: MakeCache
) -> None:
    service = cache_plane.app[CACHE]
    service.register_loader("page", page)
    other = await make_cache()
    assert other.l2 is not None
    async with InvalidationBus(other.l2.client, other, node_id="other-host", block_ms=100):
        await service.cache.get("page:a")
        assert await other.get("page:a", page) == {"page": "page:a"}
        resp = await cache_plane.client.post(
            "/admin/cache/invalidate", json={"keys": ["page:a"]}, headers=cache_plane.admin()
        )
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["complete"] and "other-host" in body["applied"] and body["pending"] == []
        assert "page:a" not in other.l1 and "page:a" not in service.cache.l1
        resp = await cache_plane.client.post(
            "/admin/cache/invalidate",
            json={"prefix": "page:", "tags": ["t"], "layers": ["l2"]},
            headers=cache_plane.admin(),
        )
        assert resp.status == 200
        assert (await resp.json())["entry_id"] is None


async def test_invalidate_names_the_l1s_that_did_not_apply(
    cache_plane: CachePlane, redis_client: aioredis.Redis
) -> None:
    # A node that heartbeats but never reads the stream (stuck): the answer names it.
    from haetae.cache import keys as ck

    await redis_client.zadd(ck.NODES, {"stuck-host": 9e12})
    resp = await cache_plane.client.post(
        "/admin/cache/invalidate",
        json={"keys": ["k"], "timeout_s": 0.2},
        headers=cache_plane.admin(),
    )
    assert resp.status == 202
    body = await resp.json()
    assert body["complete"] is False and body["pending"] == ["stuck-host"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"keys": "a"}, "body.keys"),
        ({"keys": [""]}, "body.keys[0]"),
        ({"nope": 1}, "body.nope"),
        ({}, "body.keys"),
        ({"keys": ["a"], "layers": ["l3"]}, "body.layers[0]"),
        ({"keys": ["a"], "layers": []}, "body.layers"),
        ({"keys": ["a"], "timeout_s": 0}, "body.timeout_s"),
        ({"prefix": ""}, "body.prefix"),
        # What reached Redis or Python unchecked before the validation seam.
        ({"keys": ["a\u0000b"]}, "body.keys[0]"),
        ({"keys": ["x" * 3000]}, "body.keys[0]"),
        ({"tags": [["t"]]}, "body.tags[0]"),
        ({"prefixes": "p"}, "body.prefixes"),
        ({"prefix": ["p"]}, "body.prefix"),
        ({"keys": ["a"], "layers": "l1"}, "body.layers"),
        ({"keys": ["a"], "layers": [{"l": 1}]}, "body.layers[0]"),
        ({"keys": ["a"], "timeout_s": 1e308}, "body.timeout_s"),
        ({"keys": ["a"], "timeout_s": "1"}, "body.timeout_s"),
        ({"keys": ["a"], "timeout_s": True}, "body.timeout_s"),
    ],
)
async def test_invalidate_rejects_bad_input(cache_plane: CachePlane, body: Any, field: str) -> None:
    resp = await cache_plane.client.post(
        "/admin/cache/invalidate", json=body, headers=cache_plane.admin()
    )
    problem = await assert_problem(resp, 400)
    assert problem["field"] == field


async def test_warmup_by_set_and_keys_with_progress(cache_plane: CachePlane) -> None:
    service = cache_plane.app[CACHE]
    service.register_loader("page", page)
    resp = await cache_plane.client.post(
        "/admin/cache/warmup", json={"set": "front"}, headers=cache_plane.admin()
    )
    assert resp.status == 202
    job = await resp.json()
    assert job["total"] == 2 and job["source"] == "set:front"
    for _ in range(100):
        status = await (
            await cache_plane.client.get(resp.headers["Location"], headers=cache_plane.admin())
        ).json()
        if status["status"] == "finished":
            break
        await asyncio.sleep(0.01)
    assert status["done"] == 2 and status["failed"] == 0
    assert "page:home" in service.cache.l1
    resp = await cache_plane.client.post(
        "/admin/cache/warmup", json={"keys": ["page:x"]}, headers=cache_plane.admin()
    )
    assert resp.status == 202
    listing = await (
        await cache_plane.client.get("/admin/cache/warmup", headers=cache_plane.admin())
    ).json()
    assert len(listing["jobs"]) == 2
    missing = await cache_plane.client.get("/admin/cache/warmup/nope", headers=cache_plane.admin())
    await assert_problem(missing, 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"set": "unknown"}, "body.set"),
        ({"keys": ["nons:1"]}, "body.keys[0]"),
        ({"keys": []}, "body.keys"),
        ({"keys": ["page:1"], "set": "front"}, "body.keys"),
        ({"set": ["front"]}, "body.set"),
        ({"set": "fr\u0000ont"}, "body.set"),
        ({"keys": ["page:\u0000"]}, "body.keys[0]"),
        ({"keys": "page:1"}, "body.keys"),
        ({"keys": [1]}, "body.keys[0]"),
        ({"source": ["hot"], "namespace": "page"}, "body.source"),
        ({"source": "hot", "namespace": "pa\u0000ge"}, "body.namespace"),
        ({"source": "hot", "namespace": "page", "limit": 2**64}, "body.limit"),
        ({"source": "hot", "namespace": "page", "limit": 1e308}, "body.limit"),
        ({"source": "recent", "namespace": "page"}, "body.source"),
    ],
)
async def test_warmup_rejects_bad_input(cache_plane: CachePlane, body: Any, field: str) -> None:
    cache_plane.app[CACHE].register_loader("page", page)
    resp = await cache_plane.client.post(
        "/admin/cache/warmup", json=body, headers=cache_plane.admin()
    )
    problem = await assert_problem(resp, 400)
    assert problem["field"] == field


async def test_totals_add_up_only_this_cache_not_other_named_caches_on_the_bus(
    cache_plane: CachePlane, make_cache: MakeCache
) -> None:
    # Another named cache (the link analyzer's, say) shares the bus: it is listed under hosts
    # with its own name, but its lookups must not inflate the control plane cache's totals.
    service = cache_plane.app[CACHE]
    service.register_loader("page", page)
    other = await make_cache()  # stats name "default"
    assert other.l2 is not None
    for _ in range(5):
        await other.get("page:o", page)
    async with InvalidationBus(other.l2.client, other, node_id="other-cache", block_ms=100):
        await service.cache.get("page:x")
        await service.cache.get("page:x")
        resp = await cache_plane.client.get("/admin/cache/stats", headers=cache_plane.admin())
        body = await resp.json()
    assert body["hosts"]["other-cache"]["cache"] == "default"
    assert body["hosts"]["other-cache"]["layers"]["l1"]["hits"] == 4
    assert body["totals"]["l1"] == {"hits": 1, "misses": 1, "hit_ratio": 0.5}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("hot=%00", "query.hot"),
        ("hot=99999999999999999999999", "query.hot"),
        ("hot=%C2%B2", "query.hot"),
        ("window_s=1e308", "query.window_s"),
        ("window_s=nan", "query.window_s"),
        ("window_s=1&window_s=2", "query.window_s"),
    ],
)
async def test_stats_reject_bad_query(cache_plane: CachePlane, query: str, field: str) -> None:
    resp = await cache_plane.client.get(f"/admin/cache/stats?{query}", headers=cache_plane.admin())
    assert (await assert_problem(resp, 400))["field"] == field


async def test_warmup_status_rejects_a_nul_job_id(cache_plane: CachePlane) -> None:
    resp = await cache_plane.client.get("/admin/cache/warmup/a%00b", headers=cache_plane.admin())
    # A NUL anywhere in the path is refused before routing (field "path") or by the handler.
    assert (await assert_problem(resp, 400))["field"].startswith("path")
