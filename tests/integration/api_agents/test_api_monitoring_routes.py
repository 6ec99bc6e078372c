"""The admin monitoring routes over HTTP: metrics query and the agents listing."""

from __future__ import annotations

import gzip
import time
import uuid

import orjson
import pytest
from api_agents_support import Api
from tests_support import assert_problem


async def send(api: Api, agent_id: str, token: str, samples: list[dict[str, object]]) -> None:
    doc = {
        "report_id": str(uuid.uuid4()),
        "seq": 1,
        "collected_at": time.time(),
        "samples": samples,
    }
    resp = await api.client.post(
        f"/api/v1/agents/{agent_id}/reports",
        data=gzip.compress(orjson.dumps(doc)),
        headers={**api.bearer(token), "Content-Encoding": "gzip"},
    )
    assert resp.status == 200, await resp.text()


async def test_reported_samples_are_queryable(api: Api) -> None:
    token = await api.enroll("web-1")
    now = time.time()
    await send(
        api,
        "web-1",
        token,
        [
            {"name": "up", "labels": {"job": "app"}, "value": 1, "ts": now - 20},
            {"name": "up", "labels": {"job": "app"}, "value": 0, "ts": now - 10},
            {"name": "up", "labels": {"job": "db"}, "value": "NaN", "ts": now - 10},
        ],
    )
    admin = api.bearer(api.admin_token)
    resp = await api.client.get(
        "/admin/monitoring/metrics", params={"name": "up", "match": 'job="app"'}, headers=admin
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["next_cursor"] is None
    [series] = body["series"]
    assert (series["name"], series["labels"], series["agent"]) == ("up", {"job": "app"}, "web-1")
    assert [v for _, v in series["points"]] == [1.0, 0.0]
    assert series["points"][0][0] == pytest.approx(now - 20, abs=1e-3)

    resp = await api.client.get(
        "/admin/monitoring/metrics",
        params=[("name", "up"), ("match", 'job="db"'), ("step", "1m"), ("agg", "max")],
        headers=admin,
    )
    [db] = (await resp.json())["series"]
    assert [v for _, v in db["points"]] == ["NaN"]  # non-finite values spelled as strings


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "query.name"),
        ("?name=up&step=-1", "query.step"),
        ("?name=up&start=tomorrow", "query.start"),
        ("?name=up&match=job", "query.match"),
        ("?name=up&limit=0", "query.limit"),
        ("?name=up&cursor=zzz", "query.cursor"),
        ("?name=up&bogus=1", "query.bogus"),
    ],
)
async def test_bad_query_parameters_are_400_naming_them(api: Api, query: str, field: str) -> None:
    resp = await api.client.get(
        f"/admin/monitoring/metrics{query}", headers=api.bearer(api.admin_token)
    )
    assert (await assert_problem(resp, 400))["field"] == field


async def test_monitoring_needs_an_admin_token(api: Api) -> None:
    await assert_problem(await api.client.get("/admin/monitoring/metrics?name=up"), 401)
    await assert_problem(await api.client.get("/admin/agents"), 401)
    agent = await api.enroll("web-1")
    resp = await api.client.get("/admin/agents", headers=api.bearer(agent))
    await assert_problem(resp, 403)


async def test_agents_listing_states_and_pagination(api: Api) -> None:
    await api.pool.executemany(
        """INSERT INTO agents (agent_id, hostname, labels, last_seen_at, last_seq)
           VALUES ($1, $2, '{"env": "prod"}', now() - make_interval(secs => $3), $4)""",
        [("a-up", "h1", 5.0, 7), ("b-stale", "h2", 60.0, 8), ("c-down", "h3", 500.0, 9)],
    )
    await api.pool.execute("INSERT INTO agents (agent_id) VALUES ('d-never')")
    admin = api.bearer(api.admin_token)
    resp = await api.client.get("/admin/agents", headers=admin)
    body = await resp.json()
    assert body["next_cursor"] is None
    states = {a["agent_id"]: a["state"] for a in body["agents"]}
    assert states == {"a-up": "up", "b-stale": "stale", "c-down": "down", "d-never": "down"}
    first = body["agents"][0]
    assert (first["hostname"], first["labels"], first["last_seq"]) == ("h1", {"env": "prod"}, 7)
    assert 4 <= first["seconds_since_seen"] <= 30 and first["last_seen_at"].endswith("+00:00")

    seen = []
    url = "/admin/agents?limit=3"
    page = await (await api.client.get(url, headers=admin)).json()
    seen += [a["agent_id"] for a in page["agents"]]
    page = await (await api.client.get(f"{url}&cursor={page['next_cursor']}", headers=admin)).json()
    seen += [a["agent_id"] for a in page["agents"]]
    assert seen == ["a-up", "b-stale", "c-down", "d-never"] and page["next_cursor"] is None
    bad = await api.client.get("/admin/agents?limit=x", headers=admin)
    assert (await assert_problem(bad, 400))["field"] == "query.limit"


async def test_reporting_marks_the_agent_up(api: Api) -> None:
    token = await api.enroll("web-1")
    listing = await (
        await api.client.get("/admin/agents", headers=api.bearer(api.admin_token))
    ).json()
    assert listing["agents"][0]["state"] == "down"  # enrolled, never reported
    await send(api, "web-1", token, [{"name": "up", "value": 1}])
    listing = await (
        await api.client.get("/admin/agents", headers=api.bearer(api.admin_token))
    ).json()
    assert listing["agents"][0]["state"] == "up"
