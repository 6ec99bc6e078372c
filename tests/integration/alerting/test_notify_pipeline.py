"""Timeline tests of the notification pipeline on a real database, against local HTTP peers,
with an injected clock: grouping timers, dedup, repeat, silences, 429 and 5xx handling, Slack
threads through slack-sdk."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from alerting_support import Clock
from notify_support import Peer, record_transition
from pydantic import SecretStr

from control_plane.alerting import Notifier, Outcome
from control_plane.alerting.outbox import prune_history
from control_plane.alerting.silences import create_silence
from control_plane.config import (
    InhibitRuleConfig,
    NotifyConfig,
    PagerDutyChannelConfig,
    ReceiverConfig,
    RouteConfig,
    SlackChannelConfig,
    WebhookChannelConfig,
)

T0 = 1_800_000_000.0
Server = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
def peer() -> Peer:
    return Peer()


@pytest.fixture
async def peer_url(peer: Peer, aiohttp_server: Server) -> str:
    server = await aiohttp_server(peer.app())
    return str(server.make_url(""))


def webhook_config(url: str, **route: Any) -> NotifyConfig:
    values: dict[str, Any] = {"receiver": "ops", "group_by": ["alertname"]}
    values.update(route)
    return NotifyConfig(
        receivers=[ReceiverConfig(name="ops", webhook=[WebhookChannelConfig(url=url + "/hook")])],
        routes=[RouteConfig(**values)],
        retry_base_s=1.0,
        retry_max_s=60.0,
    )


def alert(name: str, agent: str) -> dict[str, str]:
    return {"alertname": name, "agent": agent, "severity": "warning"}


async def test_grouping_timers_dedup_and_repeat(
    pool: asyncpg.Pool, peer: Peer, peer_url: str
) -> None:
    clock = Clock(T0)
    cfg = webhook_config(peer_url, group_wait_s=10, group_interval_s=60, repeat_interval_s=300)
    async with Notifier(pool, cfg, clock=clock, background=False) as notifier:

        async def at(t: float) -> list[Outcome]:
            clock.now = T0 + t
            return await notifier.run_once()

        await record_transition(pool, T0, alert("X", "a1"), "pending", "firing")
        assert await at(0) == []  # group_wait
        await record_transition(pool, T0 + 5, alert("X", "a2"), "pending", "firing")
        assert await at(5) == []
        assert await at(10) == [Outcome.SENT]
        first = peer.received[0]
        assert first.body["status"] == "firing"
        assert first.body["groupLabels"] == {"alertname": "X"}
        assert first.body["commonLabels"] == {"alertname": "X", "severity": "warning"}
        assert sorted(a["labels"]["agent"] for a in first.body["alerts"]) == ["a1", "a2"]
        assert first.headers["Idempotency-Key"]
        assert await at(20) == []  # not due
        assert await at(70) == []  # due, nothing changed: deduplicated
        # group_interval is a minimum spacing between sends, not a tick: the last send was
        # 65 s ago, so a resolution goes out at once...
        await record_transition(pool, T0 + 75, alert("X", "a1"), "firing", "resolved")
        assert await at(75) == [Outcome.SENT]
        update = peer.received[1].body
        assert update["status"] == "firing"
        assert {a["labels"]["agent"]: a["status"] for a in update["alerts"]} == {
            "a1": "resolved",
            "a2": "firing",
        }
        # ...while a change within group_interval of the last send waits for its end.
        await record_transition(pool, T0 + 80, alert("X", "a3"), "pending", "firing")
        assert await at(80) == []
        assert await at(134) == []
        assert await at(135) == [Outcome.SENT]
        assert sorted(a["labels"]["agent"] for a in peer.received[2].body["alerts"]) == [
            "a2",
            "a3",
        ]
        assert await at(200) == []  # re-checked, nothing changed: deduplicated
        assert await at(435) == [Outcome.SENT]  # repeat_interval after the last send
        assert sorted(a["labels"]["agent"] for a in peer.received[3].body["alerts"]) == [
            "a2",
            "a3",
        ]
        await record_transition(pool, T0 + 440, alert("X", "a2"), "firing", "resolved")
        await record_transition(pool, T0 + 440, alert("X", "a3"), "firing", "resolved")
        assert await at(440) == []  # 5 s after the repeat: waits for group_interval
        assert await at(495) == [Outcome.SENT]
        assert peer.received[4].body["status"] == "resolved"
        assert await at(560) == []
        assert await pool.fetchval("SELECT count(*) FROM notify_groups") == 0
    assert len(peer.received) == 5


async def test_silenced_alerts_are_left_out(pool: asyncpg.Pool, peer: Peer, peer_url: str) -> None:
    clock = Clock(T0)
    async with Notifier(
        pool, webhook_config(peer_url, group_wait_s=0), clock=clock, background=False
    ) as notifier:
        await create_silence(pool, ['alertname="Noisy"'], T0 - 1, T0 + 100, created_by="test")
        await record_transition(pool, T0, alert("Noisy", "a1"), "pending", "firing")
        await record_transition(pool, T0, alert("Loud", "a1"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.SENT]
        assert [a["labels"]["alertname"] for a in peer.received[0].body["alerts"]] == ["Loud"]
        # Once the silence is over, the alert still firing is notified.
        clock.now = T0 + 400
        assert await notifier.run_once() == [Outcome.SENT]
        assert peer.received[1].body["alerts"][0]["labels"]["alertname"] == "Noisy"


async def test_429_retry_after_and_5xx_backoff(
    pool: asyncpg.Pool, peer: Peer, peer_url: str
) -> None:
    clock = Clock(T0)
    peer.script = [(429, {"Retry-After": "30"}), (503, {})]
    cfg = webhook_config(peer_url, group_wait_s=0)
    async with Notifier(pool, cfg, clock=clock, background=False, rng=random.Random(7)) as notifier:
        await record_transition(pool, T0, alert("X", "a1"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.RATE_LIMITED]
        clock.now = T0 + 29
        assert await notifier.run_once() == []  # Retry-After honoured
        clock.now = T0 + 30
        assert await notifier.run_once() == [Outcome.RETRY]
        # Attempt 2 failed: the backoff is base * 2 with jitter, between 1 and 2 seconds.
        clock.now = T0 + 30.9
        assert await notifier.run_once() == []
        clock.now = T0 + 32.01
        assert await notifier.run_once() == [Outcome.SENT]
    row = await pool.fetchrow("SELECT * FROM notify_outbox")
    assert row is not None
    assert (row["status"], row["attempts"], row["response_status"]) == ("sent", 3, 200)
    keys = {r.headers["Idempotency-Key"] for r in peer.received}
    assert len(peer.received) == 3 and len(keys) == 1


async def test_a_refused_message_is_recorded_failed(
    pool: asyncpg.Pool, peer: Peer, peer_url: str
) -> None:
    peer.script = [(400, {})]
    clock = Clock(T0)
    async with Notifier(
        pool, webhook_config(peer_url, group_wait_s=0), clock=clock, background=False
    ) as notifier:
        await record_transition(pool, T0, alert("X", "a1"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.FAILED]
    row = await pool.fetchrow("SELECT status, last_error FROM notify_outbox")
    assert row is not None and row["status"] == "failed" and "400" in row["last_error"]


async def test_slack_threads_one_group_and_updates_it(
    pool: asyncpg.Pool, peer: Peer, peer_url: str
) -> None:
    clock = Clock(T0)
    slack = SlackChannelConfig(
        token=SecretStr("xoxb-test"), channel="#alerts", base_url=peer_url + "/api/"
    )
    cfg = NotifyConfig(
        receivers=[ReceiverConfig(name="chat", slack=[slack])],
        routes=[RouteConfig(receiver="chat", group_wait_s=0, group_interval_s=1)],
        slack_min_send_interval_s=1.0,
    )
    peer.script = [(429, {"Retry-After": "2"})]
    async with Notifier(pool, cfg, clock=clock, background=False) as notifier:
        await record_transition(
            pool, T0, alert("X", "a1"), "pending", "firing", annotations={"summary": "it broke"}
        )
        assert await notifier.run_once() == [Outcome.RATE_LIMITED]
        clock.now = T0 + 2
        assert await notifier.run_once() == [Outcome.SENT]
        post = peer.received[1]
        assert post.path == "chat.postMessage" and post.body["channel"] == "#alerts"
        assert post.body["text"] == "[FIRING:1] X"
        assert "it broke" in str(post.body["blocks"])
        await record_transition(pool, T0 + 2.5, alert("X", "a1"), "firing", "resolved")
        clock.now = T0 + 3
        assert await notifier.run_once() == [Outcome.SENT]
        update, reply = peer.received[2], peer.received[3]
        assert update.path == "chat.update"
        assert update.body["ts"] == "1700000000.000001" and update.body["channel"] == "C42"
        assert update.body["text"] == "[RESOLVED] X"
        assert reply.path == "chat.postMessage"
        assert reply.body["thread_ts"] == "1700000000.000001"
    receipt = await pool.fetchval("SELECT receipt FROM notify_outbox ORDER BY outbox_id DESC")
    assert receipt["thread_ts"] == "1700000000.000001"


async def test_pagerduty_trigger_then_resolve_and_fallback(
    pool: asyncpg.Pool, peer: Peer, peer_url: str
) -> None:
    clock = Clock(T0)
    cfg = NotifyConfig(
        receivers=[
            ReceiverConfig(
                name="oncall",
                delivery="failover",
                webhook=[WebhookChannelConfig(url=peer_url + "/hook")],
                pagerduty=[
                    PagerDutyChannelConfig(
                        routing_key=SecretStr("R0UT1NG"), url=peer_url + "/v2/enqueue"
                    )
                ],
            )
        ],
        routes=[RouteConfig(receiver="oncall", group_wait_s=0, group_interval_s=1)],
        retry_base_s=1.0,
        fallback_after_attempts=2,
    )
    # The webhook keeps failing: after two attempts the message goes to PagerDuty.
    peer.script = [(503, {}), (502, {})]
    async with Notifier(pool, cfg, clock=clock, background=False, rng=random.Random(3)) as notifier:
        await record_transition(pool, T0, alert("X", "a1"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.RETRY]
        clock.now = T0 + 2
        assert sorted(await notifier.run_once()) == sorted([Outcome.FELL_BACK, Outcome.SENT])
        trigger = peer.received[-1]
        assert trigger.path == "pagerduty"
        assert trigger.body["event_action"] == "trigger"
        assert trigger.body["routing_key"] == "R0UT1NG"
        assert trigger.body["payload"]["severity"] == "warning"
        await record_transition(pool, T0 + 3, alert("X", "a1"), "firing", "resolved")
        clock.now = T0 + 10
        await notifier.run_once()  # the webhook works again and PagerDuty is next in line
    statuses = await pool.fetch("SELECT destination, status FROM notify_outbox ORDER BY outbox_id")
    assert [(r["destination"], r["status"]) for r in statuses] == [
        ("oncall/webhook/0", "failed"),
        ("oncall/pagerduty/0", "sent"),
        ("oncall/webhook/0", "sent"),
    ]
    assert peer.received[-1].path == "/hook" and peer.received[-1].body["status"] == "resolved"


async def test_pagerduty_resolves_with_the_same_dedup_key(
    pool: asyncpg.Pool, peer: Peer, peer_url: str
) -> None:
    clock = Clock(T0)
    pd = PagerDutyChannelConfig(routing_key=SecretStr("R0UT1NG"), url=peer_url + "/v2/enqueue")
    cfg = NotifyConfig(
        receivers=[ReceiverConfig(name="pd", pagerduty=[pd])],
        routes=[RouteConfig(receiver="pd", group_wait_s=0, group_interval_s=1)],
    )
    async with Notifier(pool, cfg, clock=clock, background=False) as notifier:
        await record_transition(pool, T0, alert("X", "a1"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.SENT]
        await record_transition(pool, T0 + 1, alert("X", "a1"), "firing", "resolved")
        clock.now = T0 + 2
        assert await notifier.run_once() == [Outcome.SENT]
    trigger, resolve = (r.body for r in peer.received)
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert "payload" not in resolve


async def test_inhibited_alerts_are_left_out(pool: asyncpg.Pool, peer: Peer, peer_url: str) -> None:
    clock = Clock(T0)
    base = webhook_config(peer_url, group_wait_s=0, group_interval_s=1)
    cfg = base.model_copy(
        update={
            "inhibit_rules": [
                InhibitRuleConfig(
                    source_matchers=['severity="critical"'],
                    target_matchers=['severity="warning"'],
                    equal=["agent"],
                )
            ]
        }
    )
    down = {"alertname": "Down", "agent": "a1", "severity": "critical"}
    await pool.execute(
        """INSERT INTO alert_states (shard, rule_name, fingerprint, labels, state, value,
                                     active_at, last_active_at)
           VALUES (0, 'Down', 'fp-down', $1, 'firing', 1, now(), now())""",
        down,
    )
    async with Notifier(pool, cfg, clock=clock, background=False) as notifier:
        await record_transition(pool, T0, down, "pending", "firing")
        await record_transition(pool, T0, alert("Slow", "a1"), "pending", "firing")
        await record_transition(pool, T0, alert("Slow", "a2"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.SENT, Outcome.SENT]
    sent = sorted(
        (a["labels"]["alertname"], a["labels"]["agent"])
        for r in peer.received
        for a in r.body["alerts"]
    )
    assert sent == [("Down", "a1"), ("Slow", "a2")]


async def test_old_history_is_pruned(pool: asyncpg.Pool, peer: Peer, peer_url: str) -> None:
    clock = Clock(T0)
    async with Notifier(
        pool, webhook_config(peer_url, group_wait_s=0), clock=clock, background=False
    ) as notifier:
        await record_transition(pool, T0, alert("X", "a1"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.SENT]
        assert await prune_history(pool, T0 + 86400, 2) == 0
        assert await prune_history(pool, T0 + 3 * 86400, 2) == 2  # the message and the event
    assert await pool.fetchval("SELECT count(*) FROM notify_outbox") == 0
