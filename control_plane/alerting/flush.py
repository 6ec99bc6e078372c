"""Notification groups -> outbox (PostgreSQL): grouping timers, dedup and silences.

A group is flushed ``group_wait`` after its first alert. After that ``group_interval`` is the
minimum spacing between two sends of the group, not a tick: a change (an alert firing or
resolving, filed by :mod:`dispatch`) is flushed at once if the group's last send is at least
``group_interval`` old, else at last send + ``group_interval``. Without changes a group is
re-checked every ``group_interval`` (for ``repeat_interval``, silences that ended, inhibitions
that lifted). A flush sends (one outbox row per destination of the receiver) when the set of
firing alerts changed since the last send or alerts resolved, or when ``repeat_interval`` passed
with alerts still firing; otherwise it is deduplicated away. Silenced alerts are left out at
flush time, as in Alertmanager. Groups are claimed with ``FOR UPDATE SKIP LOCKED``: with several
control planes each group is flushed by exactly one of them. The outbox rows are announced to
every control plane's senders (``NOTIFY``, :mod:`wakeups`); the periodic re-checks are left to
the poll (not latency-critical, and announcing them would wake every replica per group).

A group whose route has an escalation policy sends nothing itself: its alerts are filed into
incidents (:mod:`correlation`: one incident per service or host), which talk to the responders
(:mod:`incident_messages`). An incident whose alerts all resolved is resolved here; one whose
alerts changed otherwise is shown in place where the channel can edit its message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence

import asyncpg
import orjson

from control_plane.alerting import incidents
from control_plane.alerting.correlation import Filed, file_alerts
from control_plane.alerting.incident_messages import (
    Event,
    LinkMaker,
    incident_notification,
    update_in_place,
)
from control_plane.alerting.outbox import enqueue
from control_plane.alerting.payload import GroupAlert, build_notification
from control_plane.alerting.routing import InhibitRule, Silence, inhibited, silenced
from control_plane.config import EscalationPolicyConfig
from control_plane.query.matchers import parse_matcher

_DUE = """
SELECT * FROM notify_groups WHERE next_flush_at <= $1
ORDER BY next_flush_at LIMIT $2 FOR UPDATE SKIP LOCKED
"""


async def active_silences(conn: asyncpg.Connection, now: float) -> list[Silence]:
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    rows = await conn.fetch("SELECT * FROM silences WHERE starts_at <= $1 AND ends_at > $1", when)
    return [
        Silence(
            str(r["silence_id"]),
            tuple(parse_matcher(m) for m in r["matchers"]),
            r["starts_at"].timestamp(),
            r["ends_at"].timestamp(),
        )
        for r in rows
    ]


async def flush_due(
    pool: asyncpg.Pool,
    destinations: Mapping[str, Sequence[str]],
    now: float,
    *,
    policies: Mapping[str, EscalationPolicyConfig] | None = None,
    link: LinkMaker | None = None,
    list_link: Callable[[float], str] | None = None,
    inhibit_rules: Sequence[InhibitRule] = (),
    limit: int = 100,
) -> int:
    """Flush the groups that are due; returns how many notifications were queued.
    ``destinations`` maps a receiver to its destination names; ``list_link`` signs the link to
    the incident list that group messages carry (``externalURL``)."""
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    queued = 0
    async with pool.acquire() as conn, conn.transaction():
        groups = await conn.fetch(_DUE, when, limit)
        if not groups:
            return 0
        silences = await active_silences(conn, now)
        firing: list[dict[str, str]] = []
        if inhibit_rules:
            # Sources are the alerts firing now, wherever evaluated (every shard's states).
            rows = await conn.fetch("SELECT labels FROM alert_states WHERE state = 'firing'")
            firing = [r["labels"] for r in rows]
        muted = MuteStage(silences, inhibit_rules, firing, now)
        filed = Filed()
        for g in groups:
            queued += await _flush_group(conn, g, destinations, muted, now, when, filed, list_link)
            if not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM notify_group_alerts"
                " WHERE group_key = $1 AND state = 'firing')",
                g["group_key"],
            ):
                # An incident opened per group (before incidents were correlated).
                await incidents.resolve_for_group(
                    conn, g["group_key"], now, policies or {}, destinations, link=link
                )
        for incident_id in sorted(filed.touched):
            await _after_filing(
                conn, incident_id, incident_id in filed.opened, now, policies, destinations, link
            )
    return queued


async def _after_filing(
    conn: asyncpg.Connection,
    incident_id: int,
    opened: bool,
    now: float,
    policies: Mapping[str, EscalationPolicyConfig] | None,
    destinations: Mapping[str, Sequence[str]],
    link: LinkMaker | None,
) -> None:
    """Resolve an incident none of whose alerts fires any more; else show the change in place
    (a new incident is paged by its escalation timer instead)."""
    inc = await conn.fetchrow(
        "SELECT * FROM incidents WHERE incident_id = $1 AND status <> 'resolved' FOR UPDATE",
        incident_id,
    )
    if inc is None:
        return
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM incident_alerts WHERE incident_id = $1 AND state = 'firing')",
        incident_id,
    ):
        await incidents.resolve_locked(
            conn, inc, "alerting", now, policies or {}, destinations, link=link
        )
    elif not opened:
        level = max(inc["level"] - 1, 0)
        note = await incident_notification(conn, inc, Event.UPDATED, level, now, link)
        await update_in_place(conn, incident_id, note, now)


async def _flush_group(
    conn: asyncpg.Connection,
    g: asyncpg.Record,
    destinations: Mapping[str, Sequence[str]],
    muted: MuteStage,
    now: float,
    when: dt.datetime,
    filed: Filed,
    list_link: Callable[[float], str] | None = None,
) -> int:
    key = g["group_key"]
    rows = await conn.fetch(
        "SELECT * FROM notify_group_alerts WHERE group_key = $1 ORDER BY fingerprint", key
    )
    if not rows:
        await conn.execute("DELETE FROM notify_groups WHERE group_key = $1", key)
        return 0
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
    visible = [a for a in alerts if not muted(a.labels)]
    firing = [a for a in visible if a.state == "firing"]
    resolved = [a for a in visible if a.state == "resolved"]
    digest = _digest(firing)
    last_sent = g["last_sent_at"]
    repeat_due = bool(firing) and (
        last_sent is None or now - last_sent.timestamp() >= g["repeat_interval_s"]
    )
    # Resolved alerts are news only to receivers that were told they fired.
    resolved_news = bool(resolved) and last_sent is not None
    send = bool(firing or resolved_news) and (
        digest != g["last_sent_digest"] or resolved_news or repeat_due
    )
    queued = 0
    policy = g["escalation_policy"]
    if policy is not None:
        # The group's incidents do the talking; it only files its alerts into them.
        done_alerts = [a for a in alerts if a.state == "resolved"]
        values = {r["fingerprint"]: r["value"] for r in rows}
        changed = await file_alerts(
            conn, key, g["receiver"], policy, firing, done_alerts, values, now
        )
        filed.merge(changed)
        send = bool(changed.touched)
    elif send:
        receiver = g["receiver"]
        note = build_notification(
            key,
            receiver,
            g["group_labels"],
            firing + resolved,
            external_url=list_link(now) if list_link is not None else "",
        )
        for dest in destinations.get(receiver, ()):
            await enqueue(conn, dest, key, note, f"{key}/{dest}/{int(now * 1000)}", now)
            queued += 1
    done = [a.fingerprint for a in alerts if a.state == "resolved"]
    if done:
        # Resolved alerts leave the group once flushed (silenced ones too: they are over).
        await conn.execute(
            "DELETE FROM notify_group_alerts WHERE group_key = $1 AND state = 'resolved'"
            " AND fingerprint = ANY($2::text[])",
            key,
            done,
        )
    await conn.execute(
        """UPDATE notify_groups SET next_flush_at = $2,
               last_sent_at = CASE WHEN $3 THEN $4 ELSE last_sent_at END,
               last_sent_digest = CASE WHEN $3 THEN $5 ELSE last_sent_digest END
           WHERE group_key = $1""",
        key,
        when + dt.timedelta(seconds=g["group_interval_s"]),
        send,
        when,
        digest,
    )
    return queued


class MuteStage:
    """Silences, then inhibition: is an alert kept out of notifications right now?"""

    def __init__(
        self,
        silences: Sequence[Silence],
        rules: Sequence[InhibitRule],
        firing: Sequence[Mapping[str, str]],
        now: float,
    ) -> None:
        self._silences = silences
        self._rules = rules
        self._firing = firing
        self._now = now

    def __call__(self, labels: Mapping[str, str]) -> bool:
        return silenced(self._silences, labels, self._now) or inhibited(
            self._rules, labels, self._firing
        )


def _digest(firing: Sequence[GroupAlert]) -> str:
    items = sorted((a.fingerprint, a.flapping) for a in firing)
    return hashlib.sha256(orjson.dumps(items)).hexdigest()[:32]
