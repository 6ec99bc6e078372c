"""Queueing a message for a destination (the outbox rows the senders claim)."""

from __future__ import annotations

import datetime as dt

import asyncpg

from control_plane.alerting import wakeups
from control_plane.alerting.payload import Notification

_ENQUEUE = """
INSERT INTO notify_outbox (destination, group_key, payload, idempotency_key, next_attempt_at,
                           created_at)
VALUES ($1, $2, $3, $4, $5, $5)
ON CONFLICT (idempotency_key) DO NOTHING
"""


async def enqueue(
    conn: asyncpg.Connection,
    destination: str,
    group_key: str,
    note: Notification,
    idempotency_key: str,
    now: float,
) -> None:
    """Queue one message for ``destination`` (sent in order after those queued before)."""
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    await conn.execute(
        "INSERT INTO notify_destinations (destination, next_send_at) VALUES ($1, $2)"
        " ON CONFLICT (destination) DO NOTHING",
        destination,
        when,
    )
    await conn.execute(_ENQUEUE, destination, group_key, note, idempotency_key, when)
    # Senders on every control plane: this destination has a message (at commit).
    await wakeups.notify(conn, wakeups.OUTBOX, destination=destination)


async def prune_history(pool: asyncpg.Pool, now: float, days: float) -> int:
    """Delete finished messages, notified transitions and resolved incidents older than
    ``days``; returns the rows deleted."""
    cutoff = dt.datetime.fromtimestamp(now - days * 86400, dt.UTC)
    deleted = 0
    async with pool.acquire() as conn, conn.transaction():
        for sql in (
            "DELETE FROM notify_outbox WHERE status <> 'pending' AND created_at < $1",
            "DELETE FROM alert_events WHERE notified AND at < $1",
            "DELETE FROM incidents WHERE status = 'resolved' AND resolved_at < $1",
        ):
            status = await conn.execute(sql, cutoff)
            deleted += int(status.split()[-1])
    return deleted
