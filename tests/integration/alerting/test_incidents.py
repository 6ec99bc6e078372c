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
from alerting_support import Clock, Plane, alerting_config
from notify_support import Peer, record_transition
from tests_support import assert_problem

from control_plane.alerting import Notifier
from control_plane.alerting.incidents import acknowledge, get_incident
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
        "escalated",
        "escalated",
        "acknowledged",
        "ack_timeout",
        "escalated",
        "resolved",
    ]
    # Escalation messages thread per incident and say which incident and level.
    rows = await pool.fetch(
        "SELECT payload FROM notify_outbox WHERE group_key = 'incident/1' ORDER BY outbox_id"
    )
    assert [r["payload"]["incident"]["level"] for r in rows][:2] == [0, 1]
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
    assert (await assert_problem(resp, 400))["field"] == "policy"
    resp = await client.get("/admin/incidents?status=resolved&limit=1", headers=h)
    assert [i["id"] for i in (await resp.json())["incidents"]] == [iid]
    await assert_problem(await client.get("/admin/incidents?status=gone", headers=h), 400)
