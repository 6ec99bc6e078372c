"""Incidents: opened from an alert group, escalated on durable timers (across a restart of the
notifier), acknowledged, re-escalated after the ack timeout, resolved with the responders told;
and the incident API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from alerting_support import Clock, Plane, alerting_config, eventually
from notify_support import Peer, record_transition
from tests_support import assert_problem

from control_plane.alerting import Notifier
from control_plane.alerting.incident_context import IncidentSeed, gather_pending
from control_plane.alerting.incidents import acknowledge, get_incident, open_incident
from control_plane.app import create_app
from control_plane.config import (
    EscalationLevelConfig,
    EscalationPolicyConfig,
    NotifyConfig,
    ReceiverConfig,
    RouteConfig,
    WebhookChannelConfig,
)

T0 = 1_800_000_000.0


def config(url: str) -> NotifyConfig:
    def receiver(name: str) -> ReceiverConfig:
        return ReceiverConfig(
            name=name, webhook=[WebhookChannelConfig(url=f"{url}/hook?to={name}")]
        )

    return NotifyConfig(
        receivers=[receiver("team"), receiver("first"), receiver("second")],
        routes=[
            RouteConfig(
                receiver="team", group_wait_s=0, group_interval_s=60, escalation_policy="default"
            )
        ],
        escalation_policies=[
            EscalationPolicyConfig(
                name="default",
                levels=[
                    EscalationLevelConfig(receivers=["first"], wait_s=60),
                    EscalationLevelConfig(receivers=["second"], wait_s=60),
                ],
                ack_timeout_s=300,
            )
        ],
    )


@pytest.fixture
async def peer_url(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> tuple[Peer, str]:
    peer = Peer()
    server = await aiohttp_server(peer.app())
    return peer, str(server.make_url(""))


async def test_escalation_timeline(pool: asyncpg.Pool, peer_url: tuple[Peer, str]) -> None:
    peer, url = peer_url
    cfg = config(url)
    clock = Clock(T0)

    def told() -> list[str]:
        out = [r.path.split("to=")[1] for r in peer.received]
        peer.received.clear()
        return sorted(out)

    async with Notifier(pool, cfg, clock=clock, background=False) as notifier:
        labels = {"alertname": "Down", "agent": "a1", "severity": "critical"}
        await record_transition(
            pool, T0, labels, "pending", "firing", annotations={"summary": "db down"}
        )
        await notifier.run_once()
        assert told() == ["first", "team"]
        clock.now = T0 + 30
        await notifier.run_once()
        assert told() == []
    # The control plane dies; another one (or the restarted one) picks the timer up.
    async with Notifier(pool, cfg, clock=clock, background=False) as notifier:
        clock.now = T0 + 60
        await notifier.run_once()
        assert told() == ["second"]
        inc = await get_incident(pool, 1)
        assert inc["status"] == "triggered" and inc["title"] == "db down"
        assert inc["next_escalation_at"] is None  # the last level was reached
        await acknowledge(pool, 1, "alice", T0 + 70, notifier.policies)
        clock.now = T0 + 300
        await notifier.run_once()
        assert told() == []
        clock.now = T0 + 370  # ack timeout: the last level is told again
        await notifier.run_once()
        assert told() == ["second"]
        await record_transition(pool, T0 + 400, labels, "firing", "resolved")
        clock.now = T0 + 430  # the group's next flush (every 60 s since T0 + 370)
        await notifier.run_once()
        assert told() == ["first", "second", "team"]
    inc = await get_incident(pool, 1)
    assert inc["status"] == "resolved"
    assert [e["kind"] for e in inc["timeline"]] == [
        "opened",
        "alert_firing",  # the alerts the incident holds are listed in its timeline
        "escalated",
        "escalated",
        "acknowledged",
        "ack_timeout",
        "escalated",
        "alert_resolved",
        "resolved",
    ]
    # The route's receiver heard of it with the first level, once.
    assert inc["timeline"][2]["detail"]["receivers"] == ["team", "first"]
    # Escalation messages thread per incident and say which incident and level.
    rows = await pool.fetch(
        "SELECT payload FROM notify_outbox WHERE group_key = 'incident/1' ORDER BY outbox_id"
    )
    assert [r["payload"]["incident"]["level"] for r in rows][:3] == [0, 0, 1]
    assert rows[-1]["payload"]["incident"]["status"] == "resolved"


async def test_incident_api(
    db_dsn: str,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    peer_url: tuple[Peer, str],
    tmp_path: Path,
) -> None:
    _, url = peer_url
    client = await aiohttp_client(
        create_app(alerting_config(db_dsn, tmp_path, None, notify=config(url)))
    )
    plane = Plane(client, (tmp_path / "admin.token").read_text().strip())
    h = plane.admin()
    resp = await client.post(
        "/admin/incidents/create", json={"title": "Checkout slow", "policy": "default"}, headers=h
    )
    assert resp.status == 201, await resp.text()
    inc = await resp.json()
    assert inc["status"] == "triggered" and inc["timeline"][0]["kind"] == "opened"
    iid = inc["id"]
    resp = await client.post(f"/admin/incidents/{iid}/ack", headers=h)
    assert (await resp.json())["status"] == "acknowledged"
    resp = await client.post(f"/admin/incidents/{iid}/note", json={"text": "on it"}, headers=h)
    assert resp.status == 201
    resp = await client.post(
        f"/admin/incidents/{iid}/reassign", json={"assignee": "bob"}, headers=h
    )
    assert (await resp.json())["assignee"] == "bob"
    resp = await client.post(f"/admin/incidents/{iid}/resolve", headers=h)
    body = await resp.json()
    assert body["status"] == "resolved"
    kinds = [e["kind"] for e in body["timeline"]]
    assert {"acknowledged", "note", "reassigned", "resolved"} <= set(kinds)
    await assert_problem(await client.post(f"/admin/incidents/{iid}/ack", headers=h), 409)
    await assert_problem(await client.get("/admin/incidents/999", headers=h), 404)
    resp = await client.post(
        "/admin/incidents/create", json={"title": "x", "policy": "nope"}, headers=h
    )
    assert (await assert_problem(resp, 400))["field"] == "body.policy"
    resp = await client.get("/admin/incidents?status=resolved&limit=1", headers=h)
    assert [i["id"] for i in (await resp.json())["incidents"]] == [iid]
    await assert_problem(await client.get("/admin/incidents?status=gone", headers=h), 400)
    # Hostile input is a 400 naming the field, never a 5xx.
    for payload, field in (
        ({"title": "x\u0000y", "policy": "default"}, "body.title"),
        ({"title": "x", "policy": ["default"]}, "body.policy"),
        ({"title": "x", "policy": {"a": 1}}, "body.policy"),
        ({"title": "x", "policy": "default", "extra": 1}, "body.extra"),
    ):
        resp = await client.post("/admin/incidents/create", json=payload, headers=h)
        assert (await assert_problem(resp, 400))["field"] == field, payload
    for path in ("/admin/incidents/%C2%B2", "/admin/incidents/%C2%B2/ack", "/admin/incidents/0"):
        method = client.post if path.endswith("/ack") else client.get
        resp = await method(path, headers=h)
        assert (await assert_problem(resp, 400))["field"] == "path.id", path
    resp = await client.post(f"/admin/incidents/{iid}/note", json={"text": "a\u0000b"}, headers=h)
    assert (await assert_problem(resp, 400))["field"] == "body.text"
    resp = await client.get("/admin/incidents?status=resolved&status=x", headers=h)
    await assert_problem(resp, 400)


class Broken:
    name = "broken"

    async def gather(self, conn: asyncpg.Connection, seed: IncidentSeed) -> Any:
        await conn.execute("SELECT * FROM no_such_table")


class Title:
    name = "title"

    async def gather(self, conn: asyncpg.Connection, seed: IncidentSeed) -> Any:
        return {"title": seed.title, "alerts": len(seed.alerts)}


async def test_context_sources_are_contained(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await open_incident(conn, "by hand", "default", T0)
    assert await gather_pending(pool, [Broken(), Title()]) == 1
    context = (await get_incident(pool, 1))["context"]
    assert context["title"] == {"title": "by hand", "alerts": 0}
    assert "UndefinedTableError" in context["broken"]["error"]
    assert await gather_pending(pool, [Title()]) == 0  # gathered once


async def test_incident_from_an_alert_carries_its_recent_series(
    db_dsn: str,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    peer_url: tuple[Peer, str],
    tmp_path: Path,
) -> None:
    _, url = peer_url
    notify = config(url)
    client = await aiohttp_client(
        create_app(alerting_config(db_dsn, tmp_path, None, notify=notify))
    )
    plane = Plane(client, (tmp_path / "admin.token").read_text().strip())
    resp = await client.post(
        "/admin/alerts/rule",
        json={"name": "DemoHigh", "expr": "demo_value > 5"},
        headers=plane.admin(),
    )
    assert resp.status == 201
    token = await plane.enroll("web-1")
    await plane.report("web-1", token, [("demo_value", {"kind": "x"}, 9.0)])

    async def with_context() -> Any:
        resp = await client.get("/admin/incidents", headers=plane.admin())
        incidents = (await resp.json())["incidents"]
        return incidents and incidents[0]["context"] and incidents[0]

    incident = await eventually(with_context)
    (series,) = incident["context"]["recent_series"]
    assert series["name"] == "demo_value" and series["agent"] == "web-1"
    assert [p[1] for p in series["points"]] == [9.0]
