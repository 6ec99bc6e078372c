"""Escalation to people: level 1 pages whoever is on call in a schedule (resolved when the level
fires, so a handoff between two passes is respected), level 2 pages a person through their
notification rules (Slack DM now, SMS later unless acknowledged). The messages reach a local
Slack Web API double and a Twilio-style SMS server; the incident's timeline says who was paged
and through what; resolving tells everyone paged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from alerting_support import Clock
from notify_support import Peer, Received
from pydantic import SecretStr

from control_plane.alerting import Notifier
from control_plane.alerting.incidents import acknowledge, get_incident, open_incident, resolve
from control_plane.alerting.pages import render_incident
from control_plane.config import (
    EscalationLevelConfig,
    EscalationPolicyConfig,
    NotifyConfig,
    PeopleChannelsConfig,
    ReceiverConfig,
    WebhookChannelConfig,
)
from control_plane.oncall import store
from control_plane.oncall.model import iso, parse_schedule, parse_user

T0 = 1_800_000_000.0  # 08:00 UTC


class People(Peer):
    """The Slack double of notify_support plus a Twilio-style Messages API."""

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.sms)
        return app

    async def sms(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.received.append(Received("sms", dict(request.headers), form))
        return web.json_response({"sid": f"SM{len(self.received)}", "status": "queued"}, status=201)

    def take(self) -> list[tuple[str, str]]:
        """(how, to) of every message since the last call, in order."""
        out = []
        for r in self.received:
            if r.path == "chat.postMessage":
                out.append(("slack", r.body["channel"]))
            elif r.path == "sms":
                out.append(("sms", r.body["To"]))
            elif r.path.startswith("/hook"):
                out.append(("webhook", r.path.split("to=")[1]))
        self.received.clear()
        return out


@pytest.fixture
async def people_url(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> tuple[People, str]:
    peer = People()
    server = await aiohttp_server(peer.app())
    return peer, str(server.make_url("")).rstrip("/")


def config(url: str) -> NotifyConfig:
    return NotifyConfig(
        receivers=[
            ReceiverConfig(name="ops", webhook=[WebhookChannelConfig(url=f"{url}/hook?to=ops")])
        ],
        people=PeopleChannelsConfig(
            slack=PeopleChannelsConfig.Slack(token=SecretStr("xoxb-test"), base_url=f"{url}/api/"),
            sms=PeopleChannelsConfig.Sms(
                account_sid="AC1",
                auth_token=SecretStr("t"),
                from_number="+15005550006",
                base_url=url,
            ),
        ),
        slack_min_send_interval_s=0,
        escalation_policies=[
            EscalationPolicyConfig(
                name="oncall",
                levels=[
                    EscalationLevelConfig(targets=["schedule:primary"], wait_s=60),
                    EscalationLevelConfig(receivers=["ops"], targets=["user:carol"], wait_s=60),
                ],
                repeat=1,
                ack_timeout_s=600,
            )
        ],
    )


async def seed(pool: asyncpg.Pool) -> None:
    for body in (
        {
            "id": "alice",
            "name": "Alice",
            "contact_methods": [{"type": "slack", "address": "UALICE"}],
        },
        {"id": "bob", "name": "Bob", "contact_methods": [{"type": "slack", "address": "UBOB"}]},
        {
            "id": "carol",
            "name": "Carol",
            "contact_methods": [
                {"type": "slack", "address": "UCAROL"},
                {"type": "sms", "address": "+821055550000"},
            ],
            "notification_rules": [{"contact": 0}, {"contact": 1, "delay_s": 30}],
        },
    ):
        await store.put_user(pool, parse_user(body))
    # Hourly rotation alice -> bob with a handoff at T0 + 90 s.
    await store.put_schedule(
        pool,
        parse_schedule(
            {
                "id": "primary",
                "layers": [
                    {
                        "name": "hourly",
                        "start": iso(T0 + 90 - 3600),
                        "rotation": "hourly",
                        "users": ["alice", "bob"],
                    }
                ],
            }
        ),
    )


async def test_schedule_then_person_with_a_handoff_between_passes(
    pool: asyncpg.Pool, people_url: tuple[People, str]
) -> None:
    peer, url = people_url
    cfg = config(url)
    await seed(pool)
    clock = Clock(T0)
    async with Notifier(pool, cfg, clock=clock, background=False) as notifier:
        async with pool.acquire() as conn:
            iid = await open_incident(conn, "checkout down", "oncall", T0)
        assert iid is not None
        await notifier.run_once()
        assert peer.take() == [("slack", "UALICE")]  # level 1: on call in primary
    # The control plane dies (kill -9) and comes back: the timers are in PostgreSQL.
    async with Notifier(pool, cfg, clock=clock, background=False) as notifier:
        clock.now = T0 + 60
        await notifier.run_once()
        assert sorted(peer.take()) == [("slack", "UCAROL"), ("webhook", "ops")]  # level 2
        clock.now = T0 + 90  # carol's second rule: SMS 30 s later, nobody acknowledged
        await notifier.run_once()
        assert peer.take() == [("sms", "+821055550000")]
        clock.now = T0 + 120  # the repeat: the schedule handed off to bob at T0 + 90
        await notifier.run_once()
        assert peer.take() == [("slack", "UBOB")]
        clock.now = T0 + 180  # level 2 again; its SMS would follow at T0 + 210 ...
        await notifier.run_once()
        assert sorted(peer.take()) == [("slack", "UCAROL"), ("webhook", "ops")]
        await acknowledge(pool, iid, "bob", T0 + 190, notifier.policies)
        clock.now = T0 + 240  # ... but bob acknowledged: cancelled
        await notifier.run_once()
        assert peer.take() == []
        await resolve(pool, iid, "bob", T0 + 250, notifier.policies, notifier.destinations)
        clock.now = T0 + 250
        await notifier.run_once()
        # Everyone paged or told is told it resolved, once per contact method.
        assert sorted(peer.take()) == [
            ("slack", "UALICE"),
            ("slack", "UBOB"),
            ("slack", "UCAROL"),
            ("sms", "+821055550000"),
            ("webhook", "ops"),
        ]
    inc = await get_incident(pool, iid)
    paged = [
        (e["detail"]["level"], e["detail"]["user"], e["detail"]["via"], e["detail"]["target"])
        for e in inc["timeline"]
        if e["kind"] == "paged"
    ]
    assert paged == [
        (0, "alice", "slack", "schedule:primary"),
        (1, "carol", "slack", "user:carol"),
        (1, "carol", "sms", "user:carol"),
        (0, "bob", "slack", "schedule:primary"),
        (1, "carol", "slack", "user:carol"),
    ]
    # The incident page shows who was paged, and through what.
    html = render_incident(inc, {})
    assert "<dt>People paged</dt><dd>Alice, Bob, Carol</dd>" in html
    assert "<b class=paged>Carol</b> via sms +821055550000" in html
    first = next(e for e in inc["timeline"] if e["kind"] == "paged")
    assert first["detail"]["schedule"] == "primary" and first["detail"]["layer"] == "hourly"
    escalated = [e["detail"] for e in inc["timeline"] if e["kind"] == "escalated"]
    assert escalated[0]["targets"] == ["schedule:primary"]
    assert escalated[1]["receivers"] == ["ops"] and escalated[1]["targets"] == ["user:carol"]
    # Each person's message says who it is for.
    rows = await pool.fetch(
        "SELECT destination, payload FROM notify_outbox WHERE destination LIKE '@people/%'"
        " ORDER BY outbox_id LIMIT 1"
    )
    assert rows[0]["destination"] == "@people/slack/0"
    assert rows[0]["payload"]["recipient"] == {
        "user": "alice",
        "name": "Alice",
        "type": "slack",
        "address": "UALICE",
    }


async def test_who_cannot_be_paged_is_in_the_timeline(
    pool: asyncpg.Pool, people_url: tuple[People, str]
) -> None:
    peer, url = people_url
    cfg = config(url).model_copy(update={"people": PeopleChannelsConfig()})  # no providers
    await seed(pool)
    await store.put_user(
        pool, parse_user({"id": "dan", "contact_methods": [{"type": "email", "address": "d@x.y"}]})
    )
    cfg = cfg.model_copy(
        update={
            "escalation_policies": [
                EscalationPolicyConfig(
                    name="oncall",
                    levels=[
                        EscalationLevelConfig(
                            targets=["user:alice", "user:ghost", "schedule:none", "user:dan"],
                            wait_s=60,
                        )
                    ],
                )
            ]
        }
    )
    clock = Clock(T0)
    async with Notifier(pool, cfg, clock=clock, background=False) as notifier:
        async with pool.acquire() as conn:
            iid = await open_incident(conn, "x", "oncall", T0)
        assert iid is not None
        await notifier.run_once()
    assert peer.take() == []
    inc = await get_incident(pool, iid)
    reasons = [e["detail"]["reason"] for e in inc["timeline"] if e["kind"] == "page_skipped"]
    assert reasons == [
        "alice: no slack provider (alerting.notify.people.slack)",
        "no such user 'ghost'",
        "no such schedule",
        "dan: no email provider (alerting.notify.people.email)",
    ]


async def test_a_person_named_twice_in_a_level_is_paged_once(
    pool: asyncpg.Pool, people_url: tuple[People, str]
) -> None:
    peer, url = people_url
    policy = EscalationPolicyConfig(
        name="oncall",
        levels=[EscalationLevelConfig(targets=["user:alice", "schedule:primary"], wait_s=60)],
    )
    cfg = config(url).model_copy(update={"escalation_policies": [policy]})
    await seed(pool)
    async with Notifier(pool, cfg, clock=Clock(T0), background=False) as notifier:
        async with pool.acquire() as conn:
            iid = await open_incident(conn, "x", "oncall", T0)
        assert iid is not None
        await notifier.run_once()  # alice is on call in primary at T0
    assert peer.take() == [("slack", "UALICE")]
    inc = await get_incident(pool, iid)
    assert [e["detail"]["user"] for e in inc["timeline"] if e["kind"] == "paged"] == ["alice"]
