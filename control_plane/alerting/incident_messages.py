"""What an incident says, and to whom: one conversation per responder destination.

An incident's message lists every alert it holds (``incident_alerts``) and carries the signed
link to its page. Each destination it has messaged is remembered (``incident_destinations``),
so that later changes reach exactly those: a destination that edits messages in place (Slack:
``chat.update`` of the first message) is shown every change (an alert joining, an escalation,
an acknowledgement); the others (SMS, AlimTalk, email, webhooks) get nothing more until the
resolution, which every destination told receives once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg

from control_plane.alerting.outbox import enqueue
from control_plane.alerting.payload import GroupAlert, Notification, build_notification

# incident id, now -> a signed link to its page
LinkMaker = Callable[[int, float], str]
Destinations = Mapping[str, Sequence[str]]

# Channel kinds whose messages are edited in place (the destination name is receiver/kind/i).
_EDIT_IN_PLACE = frozenset({"slack"})


class Event:
    """Why an incident message is sent (``incident.event`` in the payload)."""

    TRIGGERED = "triggered"  # a page: the level's destinations are told (again, on a repeat)
    UPDATED = "updated"  # alerts joined or resolved while others still fire
    ESCALATED = "escalated"  # a later level was paged; those told before see it in place
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


def edits_in_place(destination: str) -> bool:
    parts = destination.split("/")
    return len(parts) >= 2 and parts[0] != "@people" and parts[1] in _EDIT_IN_PLACE


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


async def incident_alerts(conn: asyncpg.Connection, inc: asyncpg.Record) -> list[GroupAlert]:
    """The incident's alerts (firing first); an incident opened before alerts were filed per
    incident reads its notification group's."""
    rows = await conn.fetch(
        """SELECT * FROM incident_alerts WHERE incident_id = $1
           ORDER BY state = 'resolved', starts_at, fingerprint""",
        inc["incident_id"],
    )
    if not rows and inc["group_key"] is not None:
        rows = await conn.fetch(
            "SELECT * FROM notify_group_alerts WHERE group_key = $1 ORDER BY fingerprint",
            inc["group_key"],
        )
    return [
        GroupAlert(
            r["fingerprint"],
            r["labels"],
            r["annotations"],
            r["state"],
            bool(r.get("flapping", False)),
            r["starts_at"].timestamp(),
            None if r["ends_at"] is None else r["ends_at"].timestamp(),
        )
        for r in rows
    ]


async def incident_notification(
    conn: asyncpg.Connection,
    inc: asyncpg.Record,
    event: str,
    level: int,
    now: float,
    link: LinkMaker | None,
) -> Notification:
    """The message for ``inc``: its alerts, its state after ``event``, the 0-based ``level``
    being paged (or last paged) and the signed link to its page."""
    alerts = await incident_alerts(conn, inc)
    note = build_notification(f"incident/{inc['incident_id']}", inc["policy"], {}, alerts)
    resolved = event == Event.RESOLVED
    note["status"] = "resolved" if resolved else "firing"
    status = "resolved" if resolved else inc["status"]
    if event == Event.ACKNOWLEDGED:
        status = "acknowledged"
    elif event == Event.TRIGGERED:
        status = "triggered"
    note["incident"] = {
        "id": inc["incident_id"],
        "title": inc["title"],
        "status": status,
        "level": level,
        "event": event,
    }
    if link is not None:
        url = link(inc["incident_id"], now)
        note["incident"]["url"] = url
        note["externalURL"] = url
    return note


async def told_destinations(conn: asyncpg.Connection, incident_id: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT destination FROM incident_destinations WHERE incident_id = $1 ORDER BY 1",
        incident_id,
    )
    return [r["destination"] for r in rows]


async def page_destination(
    conn: asyncpg.Connection,
    incident_id: int,
    dest: str,
    note: Notification,
    level: int,
    now: float,
    key: str,
) -> None:
    """Send ``note`` to ``dest`` as a message of its own (a page, or the resolution), and
    remember that ``dest`` was told."""
    await enqueue(conn, dest, f"incident/{incident_id}", note, key, now)
    await conn.execute(
        """INSERT INTO incident_destinations (incident_id, destination, level)
           VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
        incident_id,
        dest,
        level,
    )


async def update_in_place(
    conn: asyncpg.Connection,
    incident_id: int,
    note: Notification,
    now: float,
    *,
    skip: Sequence[str] = (),
) -> int:
    """Show ``note`` in place on every destination told that edits messages (the others wait
    for the resolution); returns how many updates were queued."""
    queued = 0
    for dest in await told_destinations(conn, incident_id):
        if dest in skip or not edits_in_place(dest):
            continue
        update: Any = {**note, "incident": {**note["incident"], "update_only": True}}
        event = note["incident"].get("event", "updated")
        await enqueue(
            conn,
            dest,
            f"incident/{incident_id}",
            update,
            f"incident/{incident_id}/{event}/{int(now * 1000)}/{dest}",
            now,
        )
        queued += 1
    return queued
