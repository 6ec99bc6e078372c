"""The demo flip, end to end through the notification pipeline: the demo app turns degraded,
three rules fire for its agent one after the other, it turns healthy again and they resolve.
With the alerting config `haetae up` generates, delivered to the local peers `haetae up` runs
(the Slack and AlimTalk stand-ins of haetae.demo_peers, spoken to by slack-sdk and the AlimTalk
client): one incident, and per destination one firing message and one resolved message (Slack
edits its first message in place for everything in between); the escalation to the second
level pages the team lead once. Every message carries the incident's signed link."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer
from alerting_support import Clock
from notify_support import record_transition

from control_plane.alerting import Notifier
from control_plane.alerting.incidents import get_incident, list_incidents
from control_plane.alerting.links import LinkSigner
from control_plane.config import NotifyConfig
from haetae.demo_peers import PEERS, create_peers_app
from haetae.up import ESCALATION_WAIT_S, UpOptions, _alerting_config

T0 = 1_800_000_000.0
AGENT = {"agent": "local-demo"}
RULES = {
    "CacheHitRatioDrop": "Cache demo (l1) hit ratio on local-demo fell to 31.2%",
    "HighErrorRate": "5xx ratio on local-demo is 19.87%",
    "HighLatencyP95": "p95 request latency on local-demo is 2.78s",
}


async def _peers(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> tuple[web.Application, int]:
    app = create_peers_app()
    server = await aiohttp_server(app)
    assert server.port is not None
    return app, server.port


def _demo_config(tmp_path: Path, peers_port: int) -> NotifyConfig:
    opts = UpOptions(data_dir=tmp_path, peers_port=peers_port)
    alerting = _alerting_config(opts, "http://127.0.0.1:8340")
    return NotifyConfig.model_validate(alerting["notify"])


def _by_destination(items: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for n in items:
        out.setdefault((n["provider"], n["to"]), []).append(n)
    return out


async def test_one_flip_is_one_incident_and_two_messages_per_destination(
    pool: asyncpg.Pool,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    tmp_path: Path,
) -> None:
    peers_app, port = await _peers(aiohttp_server)
    peers = peers_app[PEERS]
    cfg = _demo_config(tmp_path, port)
    clock = Clock(T0)
    signer = LinkSigner(b"k" * 32, base_url="http://127.0.0.1:8340", ttl_s=86400)

    async with Notifier(pool, cfg, clock=clock, signer=signer, background=False) as notifier:

        async def at(t: float) -> None:
            clock.now = T0 + t
            await notifier.run_once()

        # Degraded: the rules fire a few seconds apart (their windows fill at different speeds).
        for offset, (name, summary) in zip((0, 4, 21), RULES.items(), strict=True):
            await record_transition(
                pool,
                T0 + offset,
                {"alertname": name, "severity": "warning", **AGENT},
                "pending",
                "firing",
                annotations={"summary": summary},
            )
            await at(offset)
        await at(30)
        # Nobody acknowledged: the second level (the team lead) is paged once.
        await at(ESCALATION_WAIT_S + 1)
        # Healthy again: the alerts resolve one by one, the incident with the last of them.
        for offset, name in zip((90, 95, 100), RULES, strict=True):
            await record_transition(
                pool,
                T0 + offset,
                {"alertname": name, "severity": "warning", **AGENT},
                "firing",
                "resolved",
            )
            await at(offset)
        await at(130)

    incidents = await list_incidents(pool, status=None, limit=10, before=None)
    assert len(incidents) == 1, incidents
    incident = await get_incident(pool, incidents[0]["id"])
    assert incident["status"] == "resolved"
    assert sorted(a["labels"]["alertname"] for a in incident["alerts"]) == sorted(RULES)
    assert incident["correlation"] == ["agent=local-demo"]

    got = _by_destination(list(peers.notifications))
    assert set(got) == {
        ("slack", "#alerts"),
        ("alimtalk", "01000000001"),
        ("slack", "#alerts-escalated"),
        ("alimtalk", "01000000002"),
    }, sorted(got)
    for (provider, to), items in got.items():
        if provider == "slack":
            posts = [n for n in items if n["method"] == "chat.postMessage"]
            first, *replies = posts
            assert "thread_ts" not in first["body"], first
            # One message (firing), edited in place, and the resolution in its thread.
            assert len(replies) == 1 and replies[0]["body"]["thread_ts"], posts
            assert "RESOLVED" in replies[0]["text"]
            assert all("/incidents/" in n["text"] for n in items), items
            updates = [n for n in items if n["method"] == "chat.update"]
            assert updates, "the alerts that joined were shown in place"
        else:
            texts = [n["text"] for n in items]
            assert len(texts) == 2, (to, texts)  # firing, resolved
            assert "FIRING" in texts[0] and "RESOLVED" in texts[1]
            for text in texts:
                link = text.split("link: ", 1)[1].split()[0]
                assert link.startswith("http://127.0.0.1:8340/incidents/"), text
    # The on-call responder heard of all three alerts before the first resolved (in place).
    on_call = got[("slack", "#alerts")]
    updates = [n["text"] for n in on_call if n["method"] == "chat.update"]
    assert "(2 alerts firing)" in updates[0] and "(3 alerts firing)" in updates[1], updates
    # The team lead's page, a minute in, names every alert of the incident.
    lead_page = got[("alimtalk", "01000000002")][0]["body"]
    assert "INCIDENT" in lead_page["recipientList"][0]["templateParameter"]["title"]


async def test_alerts_of_another_host_open_their_own_incident(
    pool: asyncpg.Pool,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    tmp_path: Path,
) -> None:
    _, port = await _peers(aiohttp_server)
    cfg = _demo_config(tmp_path, port)
    clock = Clock(T0)
    async with Notifier(pool, cfg, clock=clock, background=False) as notifier:
        for agent in ("web-1", "web-2", "web-1"):
            await record_transition(
                pool,
                T0,
                {"alertname": f"Rule{clock.now - T0:.0f}", "agent": agent},
                "pending",
                "firing",
            )
            await notifier.run_once()
            clock.advance(5)
    incidents = await list_incidents(pool, status=None, limit=10, before=None)
    assert sorted(i["correlation"][0] for i in incidents) == ["agent=web-1", "agent=web-2"]
    counts = {
        i["correlation"][0]: len((await get_incident(pool, i["id"]))["alerts"]) for i in incidents
    }
    assert counts == {"agent=web-1": 2, "agent=web-2": 1}
