"""Alert transitions -> notification groups (PostgreSQL).

The rule engine records each transition in ``alert_events``; the dispatcher takes the ones not
yet notified, routes each alert to its receiver and group (``group_by``) and files it there, in
the transaction that marks the events notified: a crash loses nothing and files nothing twice.
A route with an escalation policy marks its groups so: their flushes file alerts into incidents
(:mod:`correlation`) instead of sending group messages.
One dispatcher runs at a time across control planes (a transaction-level advisory lock), so an
alert's transitions are filed in order. Each group change is announced (``NOTIFY``, see
:mod:`wakeups`) with the group's next flush, so whichever control plane flushes it wakes then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import asyncpg

from control_plane.alerting import wakeups
from control_plane.alerting.routing import Route, route_for

_DISPATCH_LOCK = 0x4AE7_0002
# Distinct flush times announced per pass at most (the earliest; the poll finds the others).
_ANNOUNCE = 64
_TAKE = """
SELECT event_id, at, fingerprint, labels, annotations, previous, state, flapping, value
FROM alert_events WHERE NOT notified ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED
"""
# DO UPDATE (not DO NOTHING) so that the row is locked against a concurrent flush deleting it.
# A change to an existing group brings its next flush forward: at once if the group's last send
# is group_interval old (group_interval is a minimum spacing between sends, not a tick), else at
# last send + group_interval; a group never sent yet keeps its group_wait.
_GROUP = """
INSERT INTO notify_groups (group_key, receiver, group_labels, group_interval_s,
                           repeat_interval_s, next_flush_at, created_at, escalation_policy)
VALUES ($1, $2, $3, $4, $5, $6, $7, $9)
ON CONFLICT (group_key) DO UPDATE SET
    receiver = EXCLUDED.receiver,
    escalation_policy = EXCLUDED.escalation_policy,
    next_flush_at = LEAST(
        notify_groups.next_flush_at,
        GREATEST(
            $7,
            COALESCE(
                notify_groups.last_sent_at + make_interval(secs => notify_groups.group_interval_s),
                notify_groups.created_at + make_interval(secs => $8::float8)
            )
        )
    )
RETURNING next_flush_at
"""
_FIRING = """
INSERT INTO notify_group_alerts (group_key, fingerprint, labels, annotations, state, flapping,
                                 value, starts_at, ends_at)
VALUES ($1, $2, $3, $4, 'firing', $5, $6, $7, NULL)
ON CONFLICT (group_key, fingerprint) DO UPDATE SET
    labels = EXCLUDED.labels, annotations = EXCLUDED.annotations, state = 'firing',
    flapping = EXCLUDED.flapping, value = EXCLUDED.value, ends_at = NULL,
    starts_at = CASE WHEN notify_group_alerts.state = 'resolved' THEN EXCLUDED.starts_at
                     ELSE notify_group_alerts.starts_at END
"""
_RESOLVED = """
INSERT INTO notify_group_alerts (group_key, fingerprint, labels, annotations, state, flapping,
                                 value, starts_at, ends_at)
VALUES ($1, $2, $3, $4, 'resolved', false, $5, $6, $6)
ON CONFLICT (group_key, fingerprint) DO UPDATE SET
    state = 'resolved', flapping = false, value = EXCLUDED.value, ends_at = EXCLUDED.ends_at
"""


def notified_state(previous: str, state: str) -> str | None:
    """What a transition means to the receivers: "firing", "resolved" or nothing (pending
    alerts are nobody's business; a firing alert whose rule was deleted is resolved)."""
    if state == "firing":
        return "firing"
    if state == "resolved" or (state == "inactive" and previous == "firing"):
        return "resolved"
    return None


async def dispatch_events(
    pool: asyncpg.Pool,
    routes: Sequence[Route],
    now: float,
    *,
    limit: int = 500,
    on_busy: Callable[[], None] | None = None,
) -> int:
    """File up to ``limit`` new transitions into their groups; returns how many were taken
    (0 also when another control plane is dispatching right now: then ``on_busy`` is called,
    as transitions committed after that dispatcher looked are left for a later pass)."""
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _DISPATCH_LOCK):
            if on_busy is not None:
                on_busy()
            return 0
        rows = await conn.fetch(_TAKE, limit)
        if not rows:
            return 0
        flushes: set[dt.datetime] = set()
        for r in rows:
            kind = notified_state(r["previous"], r["state"])
            labels = r["labels"]
            route = route_for(routes, labels) if kind else None
            if route is None:
                continue
            key, group_labels = route.group(labels)
            first_flush = when + dt.timedelta(seconds=route.group_wait_s)
            next_flush = await conn.fetchval(
                _GROUP,
                key,
                route.receiver,
                group_labels,
                route.group_interval_s,
                route.repeat_interval_s,
                first_flush,
                when,
                route.group_wait_s,
                route.escalation_policy,
            )
            flushes.add(next_flush)
            if kind == "firing":
                await conn.execute(
                    _FIRING,
                    key,
                    r["fingerprint"],
                    labels,
                    r["annotations"],
                    r["flapping"],
                    r["value"],
                    r["at"],
                )
            else:
                await conn.execute(
                    _RESOLVED, key, r["fingerprint"], labels, r["annotations"], r["value"], r["at"]
                )
        await conn.execute(
            "UPDATE alert_events SET notified = true WHERE event_id = ANY($1::bigint[])",
            [r["event_id"] for r in rows],
        )
        for at in sorted(flushes)[:_ANNOUNCE]:
            await wakeups.notify(conn, wakeups.GROUP, at=at.timestamp())
        return len(rows)
