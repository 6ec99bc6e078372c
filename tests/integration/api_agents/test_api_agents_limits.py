"""Series cardinality limits over HTTP (issue 9: one report created 200,000 series): over a limit
the report is refused whole with the limit named, counted, and no series row is written."""

from __future__ import annotations

import asyncio
import gzip
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient
from api_agents_support import Api, build_app
from tests_support import assert_problem

from control_plane.appkeys import INGESTOR
from control_plane.auth import TokenKind
from control_plane.auth.middleware import TOKEN_STORE
from control_plane.config import ControlPlaneConfig, IngestConfig

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def plane(aiohttp_client: AiohttpClient, pool: asyncpg.Pool) -> Api:
    config = ControlPlaneConfig(
        ingest=IngestConfig(
            flush_interval_s=0.01,
            max_new_series_per_report=100,
            max_new_series_per_agent_hour=250,
            max_series_per_agent=300,
            max_series_global=400,
            series_count_refresh_s=0.01,  # re-read at every flush: pruning is seen at once
        )
    )
    app = build_app(pool, config)
    client = await aiohttp_client(app)
    enrolment, _ = await app[TOKEN_STORE].create(TokenKind.ENROLMENT, "test enrolment")
    return Api(client, app, pool, enrolment, "")


def doc(series: range, metric: str = "m") -> dict[str, Any]:
    return {
        "report_id": str(uuid.uuid4()),
        "collected_at": time.time(),
        "samples": [{"name": metric, "labels": {"i": str(i)}, "value": i} for i in series],
    }


async def post(api: Api, agent: str, token: str, body: dict[str, Any]) -> Any:
    return await api.client.post(
        f"/api/v1/agents/{agent}/reports",
        data=gzip.compress(orjson.dumps(body), 1),
        headers={**api.bearer(token), "Content-Encoding": "gzip"},
    )


def limited(api: Api, limit: str) -> float:
    value = api.metrics.registry.get_sample_value("haetae_ingest_limited_total", {"limit": limit})
    assert value is not None
    return value


async def series(api: Api) -> int:
    return int(await api.pool.fetchval("SELECT count(*) FROM series"))


async def test_over_a_limit_the_report_is_refused_naming_it(plane: Api) -> None:
    a = await plane.enroll("a")
    problem = await assert_problem(await post(plane, "a", a, doc(range(101))), 422)
    assert problem["limit"] == "new_series_per_report"
    assert problem["type"].endswith("/series-limit") and "100" in problem["detail"]
    assert await series(plane) == 0 and limited(plane, "new_series_per_report") == 1

    # 200 new series in the hour; 100 more would pass 250: 429, come back later
    for part in (range(100), range(100, 200)):
        assert (await post(plane, "a", a, doc(part))).status == 200
    resp = await post(plane, "a", a, doc(range(200, 300)))
    problem = await assert_problem(resp, 429)
    assert problem["limit"] == "new_series_per_agent_hour"
    assert 1 <= int(resp.headers["Retry-After"]) <= 3600
    # series it has already are never refused, nor are reports that add few enough
    assert (await post(plane, "a", a, doc(range(200)))).status == 200
    assert (await post(plane, "a", a, doc(range(200, 250)))).status == 200
    assert await series(plane) == 250

    # the global limit (400), reached by another agent's series
    b = await plane.enroll("b")
    for part in (range(100), range(100, 150)):
        assert (await post(plane, "b", b, doc(part))).status == 200
    c = await plane.enroll("c")
    problem = await assert_problem(await post(plane, "c", c, doc(range(1))), 422)
    assert problem["limit"] == "live_series_global"
    assert await series(plane) == 400
    # series pruned (the maintenance job): room again, seen at the next count
    await plane.pool.execute("DELETE FROM series WHERE agent_id = 'b'")
    assert (await post(plane, "c", c, doc(range(1)))).status == 200

    assert limited(plane, "new_series_per_agent_hour") == 1
    assert limited(plane, "live_series_global") == 1
    rejected = plane.metrics.registry.get_sample_value(
        "haetae_ingest_reports_total", {"outcome": "rejected"}
    )
    assert rejected == 3


async def test_concurrent_reports_cannot_pass_a_limit_together(plane: Api) -> None:
    """Reports sharing a flush are admitted one after the other: never 2 x 100 over 250."""
    a = await plane.enroll("a")
    bodies = [doc(range(k * 100, k * 100 + 100)) for k in range(5)]
    answers = await asyncio.gather(*(post(plane, "a", a, b) for b in bodies))
    statuses = sorted(r.status for r in answers)
    assert statuses == [200, 200, 429, 429, 429]
    assert await series(plane) == 200
    ingestor = plane.app[INGESTOR]
    # memory stays bounded with the series: the caches hold no more than exist
    assert len(ingestor.series) <= 200 and len(ingestor.windows) <= 200
    assert ingestor.budget.live("a") == 200
