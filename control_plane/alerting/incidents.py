"""Incidents and their escalation (PostgreSQL): durable timers, acknowledge, resolve, notes.

An incident escalates through its policy's levels: each level's receivers are notified (an
outbox row per destination, threaded per incident), then the level's wait runs before the
next; after the last level the policy repeats ``repeat`` times. Acknowledging stops the timer
(or arms ``ack_timeout_s``, after which it escalates again); resolving stops it and tells every
receiver already notified. The timer is ``incidents.next_escalation_at``: due incidents are
claimed with ``FOR UPDATE SKIP LOCKED``, so after a crash (or on another control plane)
escalation resumes at the stored level, once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg

from control_plane.alerting.outbox import enqueue
from control_plane.alerting.payload import GroupAlert, Notification, build_notification
from control_plane.config import EscalationPolicyConfig

Policies = Mapping[str, EscalationPolicyConfig]
Destinations = Mapping[str, Sequence[str]]
# incident id, now -> a signed link to its page
LinkMaker = Callable[[int, float], str]


class IncidentError(Exception):
    """Misuse: no such incident, or the change does not apply to its state."""

    def __init__(self, incident_id: int, reason: str, *, missing: bool = False) -> None:
        super().__init__(f"incident {incident_id}: {reason}")
        self.incident_id = incident_id
        self.reason = reason
        self.missing = missing


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


async def record(
    conn: asyncpg.Connection,
    incident_id: int,
    kind: str,
    actor: str,
    now: float,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO incident_events (incident_id, at, kind, actor, detail)"
        " VALUES ($1, $2, $3, $4, $5)",
        incident_id,
        _ts(now),
        kind,
        actor,
        detail or {},
    )


async def open_incident(
    conn: asyncpg.Connection,
    title: str,
    policy: str,
    now: float,
    *,
    group_key: str | None = None,
    actor: str = "alerting",
    escalate_at: float | None = None,
) -> int | None:
    """Open an incident whose escalation starts at ``escalate_at`` (default: now); None when
    the group already has one open."""
    incident_id = await conn.fetchval(
        """INSERT INTO incidents (title, status, policy, group_key, next_escalation_at,
                                  created_at)
           VALUES ($1, 'triggered', $2, $3, $4, $5)
           ON CONFLICT (group_key) WHERE status <> 'resolved' DO NOTHING
           RETURNING incident_id""",
        title,
        policy,
        group_key,
        _ts(now if escalate_at is None else escalate_at),
        _ts(now),
    )
    if incident_id is not None:
        await record(conn, incident_id, "opened", actor, now, {"policy": policy})
    return incident_id


async def escalate_due(
    pool: asyncpg.Pool,
    policies: Policies,
    destinations: Destinations,
    now: float,
    *,
    link: LinkMaker | None = None,
) -> int:
    """Run the escalation timers that are due; returns how many incidents moved."""
    moved = 0
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT * FROM incidents
               WHERE next_escalation_at <= $1 AND status <> 'resolved'
               ORDER BY next_escalation_at LIMIT 50 FOR UPDATE SKIP LOCKED""",
            _ts(now),
        )
        for inc in rows:
            policy = policies.get(inc["policy"])
            if policy is None:  # the policy left the config: stop, say so
                await conn.execute(
                    "UPDATE incidents SET next_escalation_at = NULL WHERE incident_id = $1",
                    inc["incident_id"],
                )
                await record(
                    conn,
                    inc["incident_id"],
                    "stopped",
                    "alerting",
                    now,
                    {"reason": f"unknown policy {inc['policy']!r}"},
                )
                continue
            await _escalate(conn, inc, policy, destinations, now, link)
            moved += 1
    return moved


async def _escalate(
    conn: asyncpg.Connection,
    inc: asyncpg.Record,
    policy: EscalationPolicyConfig,
    destinations: Destinations,
    now: float,
    link: LinkMaker | None,
) -> None:
    incident_id = inc["incident_id"]
    level, repeats = inc["level"], inc["repeats_done"]
    if inc["status"] == "acknowledged":
        # Acknowledged but not resolved in time: the last level notified is told again, and
        # escalation goes on from there.
        level = max(level - 1, 0)
        await record(conn, incident_id, "ack_timeout", "alerting", now, {"level": level})
    if level >= len(policy.levels):
        if repeats >= policy.repeat:
            await conn.execute(
                "UPDATE incidents SET next_escalation_at = NULL WHERE incident_id = $1",
                incident_id,
            )
            return
        level, repeats = 0, repeats + 1
    step = policy.levels[level]
    note = await _notification(conn, inc, "triggered", level, now, link)
    for receiver in step.receivers:
        for dest in destinations.get(receiver, ()):
            await enqueue(
                conn,
                dest,
                f"incident/{incident_id}",
                note,
                f"incident/{incident_id}/l{level}/{int(now * 1000)}/{dest}",
                now,
            )
    await record(
        conn,
        incident_id,
        "escalated",
        "alerting",
        now,
        {"level": level, "receivers": step.receivers, "repeat": repeats},
    )
    last = level + 1 >= len(policy.levels) and repeats >= policy.repeat
    await conn.execute(
        """UPDATE incidents SET status = 'triggered', level = $2, repeats_done = $3,
               next_escalation_at = $4 WHERE incident_id = $1""",
        incident_id,
        level + 1,
        repeats,
        None if last else _ts(now + step.wait_s),
    )


async def acknowledge(
    pool: asyncpg.Pool, incident_id: int, actor: str, now: float, policies: Policies
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        inc = await _locked(conn, incident_id)
        if inc["status"] == "resolved":
            raise IncidentError(incident_id, "it is resolved")
        policy = policies.get(inc["policy"])
        timeout = policy.ack_timeout_s if policy is not None else None
        await conn.execute(
            """UPDATE incidents SET status = 'acknowledged', acknowledged_at = $2,
                   assignee = COALESCE(assignee, $3), next_escalation_at = $4
               WHERE incident_id = $1""",
            incident_id,
            _ts(now),
            actor,
            None if timeout is None else _ts(now + timeout),
        )
        await record(conn, incident_id, "acknowledged", actor, now)


async def resolve(
    pool: asyncpg.Pool,
    incident_id: int,
    actor: str,
    now: float,
    policies: Policies,
    destinations: Destinations,
    *,
    link: LinkMaker | None = None,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        inc = await _locked(conn, incident_id)
        if inc["status"] == "resolved":
            raise IncidentError(incident_id, "it is resolved already")
        await resolve_locked(conn, inc, actor, now, policies, destinations, link=link)


async def resolve_locked(
    conn: asyncpg.Connection,
    inc: asyncpg.Record,
    actor: str,
    now: float,
    policies: Policies,
    destinations: Destinations,
    *,
    link: LinkMaker | None = None,
) -> None:
    """Resolve ``inc`` (locked by the caller) and tell the receivers already notified."""
    incident_id = inc["incident_id"]
    await conn.execute(
        """UPDATE incidents SET status = 'resolved', resolved_at = $2, next_escalation_at = NULL
           WHERE incident_id = $1""",
        incident_id,
        _ts(now),
    )
    await record(conn, incident_id, "resolved", actor, now)
    policy = policies.get(inc["policy"])
    if policy is None:
        return
    reached = policy.levels if inc["repeats_done"] else policy.levels[: inc["level"]]
    told = sorted({r for step in reached for r in step.receivers})
    note = await _notification(conn, inc, "resolved", max(inc["level"] - 1, 0), now, link)
    for receiver in told:
        for dest in destinations.get(receiver, ()):
            await enqueue(
                conn,
                dest,
                f"incident/{incident_id}",
                note,
                f"incident/{incident_id}/resolved/{dest}",
                now,
            )


async def resolve_for_group(
    conn: asyncpg.Connection,
    group_key: str,
    now: float,
    policies: Policies,
    destinations: Destinations,
    *,
    link: LinkMaker | None = None,
) -> None:
    """The group's alerts all resolved: so is its open incident."""
    inc = await conn.fetchrow(
        "SELECT * FROM incidents WHERE group_key = $1 AND status <> 'resolved' FOR UPDATE",
        group_key,
    )
    if inc is not None:
        await resolve_locked(conn, inc, "alerting", now, policies, destinations, link=link)


async def add_note(pool: asyncpg.Pool, incident_id: int, actor: str, text: str, now: float) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await _locked(conn, incident_id)
        await record(conn, incident_id, "note", actor, now, {"text": text})


async def reassign(
    pool: asyncpg.Pool, incident_id: int, actor: str, assignee: str, now: float
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await _locked(conn, incident_id)
        await conn.execute(
            "UPDATE incidents SET assignee = $2 WHERE incident_id = $1", incident_id, assignee
        )
        await record(conn, incident_id, "reassigned", actor, now, {"assignee": assignee})


async def get_incident(pool: asyncpg.Pool, incident_id: int) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM incidents WHERE incident_id = $1", incident_id)
    if row is None:
        raise IncidentError(incident_id, "no such incident", missing=True)
    events = await pool.fetch(
        "SELECT * FROM incident_events WHERE incident_id = $1 ORDER BY event_id", incident_id
    )
    out = incident_json(row)
    out["timeline"] = [
        {"at": _iso(e["at"]), "kind": e["kind"], "actor": e["actor"], "detail": e["detail"]}
        for e in events
    ]
    return out


async def list_incidents(
    pool: asyncpg.Pool, *, status: str | None, limit: int, before: int | None
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT * FROM incidents
           WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR incident_id < $2)
           ORDER BY incident_id DESC LIMIT $3""",
        status,
        before,
        limit,
    )
    return [incident_json(r) for r in rows]


def incident_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["incident_id"],
        "title": r["title"],
        "status": r["status"],
        "policy": r["policy"],
        "group_key": r["group_key"],
        "level": r["level"],
        "repeats_done": r["repeats_done"],
        "assignee": r["assignee"],
        "next_escalation_at": _iso(r["next_escalation_at"]),
        "created_at": _iso(r["created_at"]),
        "acknowledged_at": _iso(r["acknowledged_at"]),
        "resolved_at": _iso(r["resolved_at"]),
        "context": r["context"],
    }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


async def _locked(conn: asyncpg.Connection, incident_id: int) -> asyncpg.Record:
    inc = await conn.fetchrow(
        "SELECT * FROM incidents WHERE incident_id = $1 FOR UPDATE", incident_id
    )
    if inc is None:
        raise IncidentError(incident_id, "no such incident", missing=True)
    return inc


async def _notification(
    conn: asyncpg.Connection,
    inc: asyncpg.Record,
    status: str,
    level: int,
    now: float,
    link: LinkMaker | None,
) -> Notification:
    alerts: list[GroupAlert] = []
    group_labels: dict[str, str] = {}
    if inc["group_key"] is not None:
        group = await conn.fetchrow(
            "SELECT group_labels FROM notify_groups WHERE group_key = $1", inc["group_key"]
        )
        group_labels = dict(group["group_labels"]) if group else {}
        rows = await conn.fetch(
            "SELECT * FROM notify_group_alerts WHERE group_key = $1 ORDER BY fingerprint",
            inc["group_key"],
        )
        alerts = [
            GroupAlert(
                r["fingerprint"],
                r["labels"],
                r["annotations"],
                r["state"],
                r["flapping"],
                r["starts_at"].timestamp(),
                None if r["ends_at"] is None else r["ends_at"].timestamp(),
            )
            for r in rows
        ]
    note = build_notification(f"incident/{inc['incident_id']}", inc["policy"], group_labels, alerts)
    note["status"] = "resolved" if status == "resolved" else "firing"
    note["incident"] = {
        "id": inc["incident_id"],
        "title": inc["title"],
        "status": status,
        "level": level,
    }
    if link is not None:
        note["incident"]["url"] = link(inc["incident_id"], now)
    return note
