"""Notifications through the real app: from an agent's report to a webhook, and two control
planes on one database sending each notification exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from alerting_support import Plane, alerting_config, eventually
from notify_support import Peer, record_transition

from control_plane.alerting.context import NOTIFIER
from control_plane.app import create_app
from control_plane.appkeys import POOL
from control_plane.config import NotifyConfig, ReceiverConfig, RouteConfig, WebhookChannelConfig

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


def notify(url: str) -> NotifyConfig:
    return NotifyConfig(
        receivers=[ReceiverConfig(name="ops", webhook=[WebhookChannelConfig(url=url + "/hook")])],
        routes=[
            RouteConfig(
                receiver="ops", group_by=["alertname"], group_wait_s=0, group_interval_s=0.1
            )
        ],
        tick_s=0.05,
    )


async def peer_url(peer: Peer, aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    server = await aiohttp_server(peer.app())
    return str(server.make_url(""))


async def test_report_to_webhook_firing_then_resolved(
    db_dsn: str,
    aiohttp_client: Client,
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    tmp_path: Path,
) -> None:
    peer = Peer()
    url = await peer_url(peer, aiohttp_server)
    cfg = alerting_config(db_dsn, tmp_path, None, notify=notify(url))
    client = await aiohttp_client(create_app(cfg))
    plane = Plane(client, (tmp_path / "admin.token").read_text().strip())
    resp = await client.post(
        "/admin/alerts/rule",
        json={"name": "DemoHigh", "expr": "demo_value > 5", "severity": "critical"},
        headers=plane.admin(),
    )
    assert resp.status == 201
    token = await plane.enroll("web-1")
    await plane.report("web-1", token, [("demo_value", {}, 9.0)])

    async def got(n: int) -> bool:
        return len(peer.received) >= n

    await eventually(lambda: got(1))
    fired = peer.received[0].body
    assert fired["status"] == "firing" and fired["receiver"] == "ops"
    assert fired["alerts"][0]["labels"]["alertname"] == "DemoHigh"
    await plane.report("web-1", token, [("demo_value", {}, 1.0)])
    await eventually(lambda: got(2))
    assert peer.received[1].body["status"] == "resolved"
    resp = await client.get("/admin/alerts/groups", headers=plane.admin())
    assert resp.status == 200


async def test_two_control_planes_send_each_notification_once(
    db_dsn: str,
    aiohttp_client: Client,
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    tmp_path: Path,
) -> None:
    peer = Peer()
    url = await peer_url(peer, aiohttp_server)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = await aiohttp_client(
        create_app(alerting_config(db_dsn, tmp_path / "a", None, notify=notify(url)))
    )
    second = await aiohttp_client(
        create_app(alerting_config(db_dsn, tmp_path / "b", None, notify=notify(url)))
    )
    pool = first.app[POOL]
    n = 30
    now = time.time()
    for i in range(n):
        labels = {"alertname": f"Alert{i}", "agent": "a1", "severity": "warning"}
        await record_transition(pool, now, labels, "pending", "firing")
    first.app[NOTIFIER].wake()
    second.app[NOTIFIER].wake()

    async def all_sent() -> bool:
        return await pool.fetchval("SELECT count(*) FROM notify_outbox WHERE status = 'sent'") == n

    await eventually(all_sent)
    await asyncio.sleep(0.3)  # anything sent twice would arrive meanwhile
    keys = Counter(r.body["groupKey"] for r in peer.received)
    assert len(keys) == n and set(keys.values()) == {1}
    assert len(peer.received) == n
