"""Cross-replica wake-ups (LISTEN/NOTIFY): work created by one control plane wakes another at
once, or at its due time. The replica under test polls every 30 s, so only a NOTIFY can have
woken it within the bounds asserted here; its listener connection is killed and comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from alerting_support import alerting_config, eventually
from notify_support import Peer, record_transition

from control_plane.alerting import Notifier
from control_plane.alerting.dispatch import _DISPATCH_LOCK, dispatch_events
from control_plane.alerting.incidents import open_incident
from control_plane.alerting.outbox import enqueue
from control_plane.alerting.payload import GroupAlert, build_notification
from control_plane.alerting.routing import Route
from control_plane.app import create_app
from control_plane.appkeys import METRICS
from control_plane.config import (
    EscalationLevelConfig,
    EscalationPolicyConfig,
    NotifyConfig,
    PostgresConfig,
    ReceiverConfig,
    RouteConfig,
    WebhookChannelConfig,
)
from control_plane.store import create_pool

Server = Callable[[web.Application], Awaitable[TestServer]]
POLL_S = 30.0  # the replica's poll: far beyond every bound below
BOUND_S = 5.0


@pytest.fixture
def peer() -> Peer:
    return Peer()


@pytest.fixture
async def peer_url(peer: Peer, aiohttp_server: Server) -> str:
    server = await aiohttp_server(peer.app())
    return str(server.make_url(""))


def config(url: str, *, group_wait_s: float = 0.0) -> NotifyConfig:
    return NotifyConfig(
        receivers=[ReceiverConfig(name="ops", webhook=[WebhookChannelConfig(url=url + "/hook")])],
        routes=[
            RouteConfig(
                receiver="ops",
                group_by=["alertname"],
                group_wait_s=group_wait_s,
                group_interval_s=60,
            )
        ],
        escalation_policies=[
            EscalationPolicyConfig(
                name="page", levels=[EscalationLevelConfig(receivers=["ops"], wait_s=600)]
            )
        ],
        tick_s=POLL_S,
    )


@pytest.fixture
async def replica_b(pool: asyncpg.Pool, db_dsn: str, peer_url: str) -> AsyncIterator[Notifier]:
    """The replica that sends: background loops polling every 30 s, listening for wake-ups."""

    async def listen() -> asyncpg.Connection:
        return await asyncpg.connect(db_dsn)

    async with Notifier(pool, config(peer_url), listen=listen) as notifier:
        listener = notifier.listener
        assert listener is not None
        await eventually(lambda: _true(listener.subscribed.is_set()))
        # Its first pass (run on subscribing) finds nothing; then only wake-ups move it.
        yield notifier


async def _true(value: bool) -> bool:
    return value


async def received(peer: Peer, n: int, started: float) -> float:
    async def got() -> bool:
        return len(peer.received) >= n

    await eventually(got, within=BOUND_S + 5)
    return time.monotonic() - started


async def test_outbox_row_of_another_replica_wakes_the_sender(
    pool: asyncpg.Pool, db_dsn: str, peer: Peer, replica_b: Notifier
) -> None:
    # Another replica queues a message it cannot send itself: the row's NOTIFY wakes B.
    now = time.time()
    alert = GroupAlert("fp-x", {"alertname": "X"}, {}, "firing", False, now, None)
    note = build_notification('{}:{alertname="X"}', "ops", {"alertname": "X"}, [alert])
    other = await create_pool(db_dsn, PostgresConfig(pool_min_size=1, pool_max_size=2))
    try:
        started = time.monotonic()
        async with other.acquire() as conn, conn.transaction():
            await enqueue(conn, "ops/webhook/0", "g-x", note, "g-x/1", now)
        assert await received(peer, 1, started) < BOUND_S
    finally:
        await other.close()
    assert peer.received[0].body["status"] == "firing"
    assert replica_b.listener is not None
    assert replica_b.listener.metrics.wakeups.labels("outbox")._value.get() >= 1


async def test_group_change_wakes_the_flush_at_its_due_time(
    pool: asyncpg.Pool, db_dsn: str, peer: Peer, peer_url: str, replica_b: Notifier
) -> None:
    # Replica A only dispatches, into a group flushed 0.5 s later: B flushes it then.
    routes = [Route.from_config(0, r) for r in config(peer_url, group_wait_s=0.5).routes]
    other = await create_pool(db_dsn, PostgresConfig(pool_min_size=1, pool_max_size=2))
    try:
        started = time.monotonic()
        now = time.time()
        await record_transition(other, now, {"alertname": "Y"}, "pending", "firing")
        assert await dispatch_events(other, routes, now) == 1
        elapsed = await received(peer, 1, started)
    finally:
        await other.close()
    assert 0.45 <= elapsed < BOUND_S  # not before group_wait
    assert peer.received[0].body["groupLabels"] == {"alertname": "Y"}


async def test_escalation_timer_of_another_replica_wakes_at_its_due_time(
    pool: asyncpg.Pool, peer: Peer, replica_b: Notifier
) -> None:
    started = time.monotonic()
    async with pool.acquire() as conn, conn.transaction():
        await open_incident(conn, "disk full", "page", time.time(), escalate_at=time.time() + 0.5)
    elapsed = await received(peer, 1, started)
    assert 0.45 <= elapsed < BOUND_S
    assert "disk full" in str(peer.received[0].body)


async def test_listener_killed_reconnects_and_wakeups_still_flow(
    pool: asyncpg.Pool, db_dsn: str, peer: Peer, peer_url: str, replica_b: Notifier
) -> None:
    listener = replica_b.listener
    assert listener is not None and listener.connection is not None
    old_pid = listener.connection.get_server_pid()
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", old_pid)

    async def back() -> bool:
        conn = listener.connection
        return (
            listener.subscribed.is_set() and conn is not None and conn.get_server_pid() != old_pid
        )

    await eventually(back, within=BOUND_S)
    assert listener.metrics.reconnects._value.get() == 1
    assert listener.metrics.connected._value.get() == 1

    routes = [Route.from_config(0, r) for r in config(peer_url).routes]
    started = time.monotonic()
    now = time.time()
    await record_transition(pool, now, {"alertname": "Z"}, "pending", "firing")
    # Dispatched here (as by another replica): B flushes and sends it on the group's NOTIFY.
    assert await dispatch_events(pool, routes, now) == 1
    assert await received(peer, 1, started) < BOUND_S
    assert len(peer.received) == 1


async def test_dispatch_lock_held_by_another_replica_is_tried_again_soon(
    pool: asyncpg.Pool, peer: Peer, replica_b: Notifier
) -> None:
    # Another replica is dispatching when B is woken (by its rule engine): B looks again shortly
    # instead of at its next poll (the other dispatcher may have looked before the commit).
    async with pool.acquire() as conn, conn.transaction():
        assert await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _DISPATCH_LOCK)
        await record_transition(pool, time.time(), {"alertname": "W"}, "pending", "firing")
        replica_b.wake()
        await asyncio.sleep(0.3)
        assert peer.received == []
        started = time.monotonic()
    assert await received(peer, 1, started) < BOUND_S


async def test_control_plane_app_listens_and_exports_the_listener_metrics(
    db_dsn: str,
    pool: asyncpg.Pool,
    peer: Peer,
    peer_url: str,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    tmp_path: Path,
) -> None:
    # The production factory wires the LISTEN connection: a message queued elsewhere is sent
    # although the app polls every 30 s.
    app = create_app(alerting_config(db_dsn, tmp_path, None, notify=config(peer_url)))
    client = await aiohttp_client(app)
    registry = client.app[METRICS].registry

    async def connected() -> bool:
        return registry.get_sample_value("haetae_notify_listener_connected") == 1

    await eventually(connected)
    now = time.time()
    alert = GroupAlert("fp-v", {"alertname": "V"}, {}, "firing", False, now, None)
    note = build_notification("g-v", "ops", {"alertname": "V"}, [alert])
    started = time.monotonic()
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, "ops/webhook/0", "g-v", note, "g-v/1", now)
    assert await received(peer, 1, started) < BOUND_S
    assert registry.get_sample_value("haetae_notify_wakeups_total", {"kind": "outbox"}) >= 1
