"""Incidents and their escalation (PostgreSQL): durable timers, acknowledge, resolve, notes.

An incident escalates through its policy's levels: each level's receivers are notified (an
outbox row per destination, threaded per incident), then the level's wait runs before the
next; after the last level the policy repeats ``repeat`` times. Acknowledging stops the timer
(or arms ``ack_timeout_s``, after which it escalates again); resolving stops it and tells every
receiver already notified. The timer is ``incidents.next_escalation_at``: due incidents are
claimed with ``FOR UPDATE SKIP LOCKED``, so after a crash (or on another control plane)
escalation resumes at the stored level, once. Setting a timer announces its due time to every
control plane (``NOTIFY``, :mod:`wakeups`), which wake then instead of waiting for their poll.

A level's targets are receivers (channels), people (``user:<id>``) and on-call schedules
(``schedule:<id>``, resolved to whoever is on call when the level fires, so a handoff between
levels is respected). A person is paged through their notification rules: contact methods now,
or after a delay (``oncall_pages``, a durable timer cancelled by acknowledging or resolving),
each an outbox row for the ``@people/<type>/0`` destination carrying the person's address. The
timeline records who was paged, through what, and why someone could not be.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, cast

import asyncpg

from control_plane.alerting import wakeups
from control_plane.alerting.incident_messages import (
    Destinations,
    Event,
    LinkMaker,
    incident_notification,
    page_destination,
    told_destinations,
    update_in_place,
)
from control_plane.alerting.outbox import enqueue
from control_plane.alerting.payload import Notification
from control_plane.config import EscalationPolicyConfig
from control_plane.oncall.model import PEOPLE, ContactMethod, User, people_destination
from control_plane.oncall.store import get_user, who_is_on_call

Policies = Mapping[str, EscalationPolicyConfig]


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
    receiver: str | None = None,
    correlation: Sequence[str] = (),
) -> int | None:
    """Open an incident whose escalation starts at ``escalate_at`` (default: now); None when
    the group already has one open. ``receiver`` (a route's) is told with the first level;
    ``correlation`` are the keys alerts join it by (:mod:`correlation`)."""
    incident_id = await conn.fetchval(
        """INSERT INTO incidents (title, status, policy, group_key, next_escalation_at,
                                  created_at, receiver, correlation)
           VALUES ($1, 'triggered', $2, $3, $4, $5, $6, $7)
           ON CONFLICT (group_key) WHERE status <> 'resolved' DO NOTHING
           RETURNING incident_id""",
        title,
        policy,
        group_key,
        _ts(now if escalate_at is None else escalate_at),
        _ts(now),
        receiver,
        list(correlation),
    )
    if incident_id is not None:
        await record(conn, incident_id, "opened", actor, now, {"policy": policy})
        await wakeups.notify(conn, wakeups.TIMER, at=now if escalate_at is None else escalate_at)
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
        moved += await _delayed_pages_due(conn, destinations, now, link)
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
    # A page to someone told already is a re-page only on a new pass of the policy or after an
    # acknowledgement timed out; otherwise they see the escalation in place (Slack) or not.
    repage = False
    if inc["status"] == "acknowledged":
        # Acknowledged but not resolved in time: the last level notified is told again, and
        # escalation goes on from there.
        level = max(level - 1, 0)
        repage = True
        await record(conn, incident_id, "ack_timeout", "alerting", now, {"level": level})
    if level >= len(policy.levels):
        if repeats >= policy.repeat:
            await conn.execute(
                "UPDATE incidents SET next_escalation_at = NULL WHERE incident_id = $1",
                incident_id,
            )
            return
        level, repeats = 0, repeats + 1
    repage = repage or repeats > 0  # a new pass of the policy pages its levels again
    step = policy.levels[level]
    note = await incident_notification(conn, inc, Event.TRIGGERED, level, now, link)
    receivers = list(step.receiver_names)
    if level == 0 and repeats == 0 and inc["receiver"] and inc["receiver"] not in receivers:
        receivers.insert(0, inc["receiver"])  # the route's receiver hears of it from the start
    told = set(await told_destinations(conn, incident_id))
    paged_now: list[str] = []
    for name in receivers:
        for dest in destinations.get(name, ()):
            if dest in paged_now or (dest in told and not repage):
                continue
            paged_now.append(dest)
            await page_destination(
                conn,
                incident_id,
                dest,
                note,
                level,
                now,
                f"incident/{incident_id}/l{level}/{int(now * 1000)}/{dest}",
            )
    if told - set(paged_now):
        escalated = await incident_notification(conn, inc, Event.ESCALATED, level, now, link)
        escalated["incident"]["status"] = "triggered"
        await update_in_place(conn, incident_id, escalated, now, skip=paged_now)
    people = [f"{kind}:{name}" for kind, name in step.parsed_targets() if kind != "receiver"]
    detail: dict[str, Any] = {"level": level, "receivers": receivers, "repeat": repeats}
    if people:
        detail["targets"] = people
    await record(conn, incident_id, "escalated", "alerting", now, detail)
    paged: set[str] = set()  # a person named twice in a level (user and on call) is paged once
    for target in people:
        await _page_target(conn, incident_id, target, level, note, destinations, now, paged)
    last = level + 1 >= len(policy.levels) and repeats >= policy.repeat
    await conn.execute(
        """UPDATE incidents SET status = 'triggered', level = $2, repeats_done = $3,
               next_escalation_at = $4 WHERE incident_id = $1""",
        incident_id,
        level + 1,
        repeats,
        None if last else _ts(now + step.wait_s),
    )
    if not last:
        await wakeups.notify(conn, wakeups.TIMER, at=now + step.wait_s)


async def acknowledge(
    pool: asyncpg.Pool,
    incident_id: int,
    actor: str,
    now: float,
    policies: Policies,
    *,
    link: LinkMaker | None = None,
) -> None:
    """Stop the escalation (or arm the ack timeout); destinations that edit in place show it."""
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
        if timeout is not None:
            await wakeups.notify(conn, wakeups.TIMER, at=now + timeout)
        await record(conn, incident_id, "acknowledged", actor, now)
        await _cancel_delayed_pages(conn, incident_id)
        level = max(inc["level"] - 1, 0)
        note = await incident_notification(conn, inc, Event.ACKNOWLEDGED, level, now, link)
        await update_in_place(conn, incident_id, note, now)


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
    await _cancel_delayed_pages(conn, incident_id)
    level = max(inc["level"] - 1, 0)
    note = await incident_notification(conn, inc, Event.RESOLVED, level, now, link)
    await _tell_paged_people(conn, incident_id, note, destinations, now)
    for dest in await told_destinations(conn, incident_id):
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
    alerts = await pool.fetch(
        """SELECT * FROM incident_alerts WHERE incident_id = $1
           ORDER BY state = 'resolved', starts_at, fingerprint""",
        incident_id,
    )
    out["alerts"] = [
        {
            "fingerprint": a["fingerprint"],
            "state": a["state"],
            "labels": a["labels"],
            "annotations": a["annotations"],
            "value": a["value"],
            "starts_at": _iso(a["starts_at"]),
            "ends_at": _iso(a["ends_at"]),
        }
        for a in alerts
    ]
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
        "receiver": r["receiver"],
        "correlation": list(r["correlation"]),
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


# --- paging people ---------------------------------------------------------------------------


async def _page_target(
    conn: asyncpg.Connection,
    incident_id: int,
    target: str,
    level: int,
    note: Notification,
    destinations: Destinations,
    now: float,
    paged: set[str],
) -> None:
    """Page ``user:<id>``, or whoever is on call now in ``schedule:<id>`` (unless in
    ``paged`` already)."""
    kind, _, name = target.partition(":")
    user_id = name
    via_schedule: dict[str, Any] = {}
    if kind == "schedule":
        try:
            _, who = await who_is_on_call(conn, name, now)
        except LookupError:
            await _skipped(conn, incident_id, now, target, level, "no such schedule")
            return
        if who is None:
            await _skipped(conn, incident_id, now, target, level, "nobody is on call")
            return
        user_id = who.user_id
        via_schedule = {"schedule": name, "source": who.source, "layer": who.layer}
    if user_id in paged:
        return
    paged.add(user_id)
    user = await get_user(conn, user_id)
    if user is None:
        await _skipped(conn, incident_id, now, target, level, f"no such user {user_id!r}")
        return
    plan = user.plan()
    if not plan:
        await _skipped(conn, incident_id, now, target, level, f"{user.id} has no contact methods")
        return
    for contact, delay in plan:
        if delay > 0:
            await conn.execute(
                """INSERT INTO oncall_pages (incident_id, level, user_id, contact, target, due_at)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                incident_id,
                level,
                user.id,
                contact.to_json(),
                target,
                _ts(now + delay),
            )
            await wakeups.notify(conn, wakeups.TIMER, at=now + delay)
            continue
        await _page(
            conn, incident_id, level, user, contact, target, note, destinations, now, via_schedule
        )


async def _page(
    conn: asyncpg.Connection,
    incident_id: int,
    level: int,
    user: User,
    contact: ContactMethod,
    target: str,
    note: Notification,
    destinations: Destinations,
    now: float,
    extra: Mapping[str, Any] | None = None,
) -> None:
    dest = people_destination(contact.type)
    if dest not in destinations.get(PEOPLE, ()):
        await _skipped(
            conn,
            incident_id,
            now,
            target,
            level,
            f"{user.id}: no {contact.type} provider (alerting.notify.people.{contact.type})",
        )
        return
    person_note = cast(Notification, {**note, "recipient": _recipient(user.id, user.name, contact)})
    await enqueue(
        conn,
        dest,
        f"incident/{incident_id}",
        person_note,
        f"incident/{incident_id}/l{level}/{int(now * 1000)}/{user.id}/{contact.type}"
        f"/{contact.address}",
        now,
    )
    await record(
        conn,
        incident_id,
        "paged",
        "alerting",
        now,
        {
            "level": level,
            "target": target,
            "user": user.id,
            "name": user.name,
            "via": contact.type,
            "address": contact.address,
            **(extra or {}),
        },
    )


def _recipient(user_id: str, name: str, contact: ContactMethod) -> dict[str, str]:
    return {"user": user_id, "name": name, "type": contact.type, "address": contact.address}


async def _skipped(
    conn: asyncpg.Connection,
    incident_id: int,
    now: float,
    target: str,
    level: int,
    reason: str,
) -> None:
    await record(
        conn,
        incident_id,
        "page_skipped",
        "alerting",
        now,
        {"level": level, "target": target, "reason": reason},
    )


async def _delayed_pages_due(
    conn: asyncpg.Connection, destinations: Destinations, now: float, link: LinkMaker | None
) -> int:
    """Send people's later notification rules that are due (the incident is still
    unacknowledged: acknowledging or resolving cancels them)."""
    rows = await conn.fetch(
        """SELECT p.*, u.name FROM oncall_pages p LEFT JOIN oncall_users u USING (user_id)
           WHERE p.status = 'pending' AND p.due_at <= $1
           ORDER BY p.due_at LIMIT 50 FOR UPDATE OF p SKIP LOCKED""",
        _ts(now),
    )
    for row in rows:
        await conn.execute(
            "UPDATE oncall_pages SET status = 'sent' WHERE page_id = $1", row["page_id"]
        )
        inc = await conn.fetchrow(
            "SELECT * FROM incidents WHERE incident_id = $1", row["incident_id"]
        )
        if inc is None or inc["status"] != "triggered":
            continue
        user = User(row["user_id"], row["name"] or row["user_id"])
        contact = ContactMethod(row["contact"]["type"], row["contact"]["address"])
        note = await incident_notification(conn, inc, Event.TRIGGERED, row["level"], now, link)
        await _page(
            conn,
            inc["incident_id"],
            row["level"],
            user,
            contact,
            row["target"],
            note,
            destinations,
            now,
            {"delayed": True},
        )
    return len(rows)


async def _cancel_delayed_pages(conn: asyncpg.Connection, incident_id: int) -> None:
    await conn.execute(
        "UPDATE oncall_pages SET status = 'cancelled' WHERE incident_id = $1"
        " AND status = 'pending'",
        incident_id,
    )


async def _tell_paged_people(
    conn: asyncpg.Connection,
    incident_id: int,
    note: Notification,
    destinations: Destinations,
    now: float,
) -> None:
    """The incident resolved: every person paged for it is told, once per contact method."""
    rows = await conn.fetch(
        """SELECT DISTINCT detail->>'user' AS user_id, detail->>'name' AS name,
                  detail->>'via' AS via, detail->>'address' AS address
           FROM incident_events WHERE incident_id = $1 AND kind = 'paged'
           ORDER BY 1, 3, 4""",
        incident_id,
    )
    for r in rows:
        dest = people_destination(r["via"])
        if dest not in destinations.get(PEOPLE, ()):
            continue
        contact = ContactMethod(r["via"], r["address"])
        await enqueue(
            conn,
            dest,
            f"incident/{incident_id}",
            cast(Notification, {**note, "recipient": _recipient(r["user_id"], r["name"], contact)}),
            f"incident/{incident_id}/resolved/{dest}/{r['user_id']}/{r['address']}",
            now,
        )
