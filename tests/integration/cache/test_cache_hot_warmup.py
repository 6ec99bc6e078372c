"""Hot keys in GET /admin/cache/stats and as a warm-up source (POST /admin/cache/warmup)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from tests_support import assert_problem

from control_plane.appkeys import CACHE

if TYPE_CHECKING:  # conftest is not importable by name when several test folders have one
    from conftest import CachePlane


async def page(key: str) -> dict[str, Any]:
    return {"page": key}


async def test_stats_list_hot_keys_and_warmup_loads_them(cache_plane: CachePlane) -> None:
    service = cache_plane.app[CACHE]
    service.register_loader("page", page)
    for i, reads in enumerate((40, 20, 5, 1)):
        for _ in range(reads):
            await service.cache.get(f"page:{i}")
    resp = await cache_plane.client.get("/admin/cache/stats?hot=2", headers=cache_plane.admin())
    assert resp.status == 200
    hot = (await resp.json())["local"]["hot_keys"]["page"]
    assert [h["key"] for h in hot] == ["page:0", "page:1"]
    assert hot[0]["count"] >= hot[1]["count"] >= 1

    # The L1 lost everything (a restart, a flush): warm the three hottest back from the stats.
    service.cache.flush_l1()
    resp = await cache_plane.client.post(
        "/admin/cache/warmup",
        json={"source": "hot", "namespace": "page", "limit": 3},
        headers=cache_plane.admin(),
    )
    assert resp.status == 202, await resp.text()
    job = await resp.json()
    assert job["source"] == "hot:page" and job["total"] == 3
    for _ in range(200):
        status = await (
            await cache_plane.client.get(resp.headers["Location"], headers=cache_plane.admin())
        ).json()
        if status["status"] == "finished":
            break
        await asyncio.sleep(0.01)
    assert status["done"] == 3 and status["failed"] == 0
    assert all(f"page:{i}" in service.cache.l1 for i in range(3))
    assert "page:3" not in service.cache.l1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "cold", "namespace": "page"}, "body.source"),
        ({"source": "hot", "namespace": "page", "keys": ["page:1"]}, "body.source"),
        ({"source": "hot"}, "body.namespace"),
        ({"source": "hot", "namespace": "nons"}, "body.namespace"),
        ({"source": "hot", "namespace": "page", "limit": 0}, "body.limit"),
        ({"source": "hot", "namespace": "page", "limit": "5"}, "body.limit"),
        ({"source": "hot", "namespace": "page"}, "body.namespace"),  # nothing recorded yet
        ({"keys": ["page:1"], "limit": 3}, "body.namespace"),
    ],
)
async def test_hot_warmup_rejects_bad_input(cache_plane: CachePlane, body: Any, field: str) -> None:
    cache_plane.app[CACHE].register_loader("page", page)
    resp = await cache_plane.client.post(
        "/admin/cache/warmup", json=body, headers=cache_plane.admin()
    )
    problem = await assert_problem(resp, 400)
    assert problem["field"] == field


async def test_stats_reject_a_bad_hot_parameter(cache_plane: CachePlane) -> None:
    resp = await cache_plane.client.get("/admin/cache/stats?hot=x", headers=cache_plane.admin())
    problem = await assert_problem(resp, 400)
    assert problem["field"] == "query.hot"
