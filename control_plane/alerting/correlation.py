"""One problem, one incident: alerts of the same service or host join the open incident.

An alert's correlation keys are its ``service``, ``agent`` and ``instance`` labels (the
service, the host's agent, the scrape target), as ``label=value``; an alert with none of them
is keyed by its ``alertname``. When a group on a route with an escalation policy is flushed,
each of its firing alerts joins the open incident of the same receiver and policy that shares
one of its keys (the incident takes the alert's keys too), or opens one. Resolved alerts are
marked so in their incident; when none of an incident's alerts fires any more, it resolves.
``scrape job`` is deliberately not a key: one job spans every host.

Filing is serialised across control planes by a transaction-level advisory lock, so two
groups flushed at once cannot open two incidents for one host.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg

from control_plane.alerting.incidents import open_incident, record
from control_plane.alerting.payload import GroupAlert

CORRELATION_LABELS = ("service", "agent", "instance")
_FILING_LOCK = 0x4AE7_0003


def correlation_keys(labels: Mapping[str, str]) -> list[str]:
    keys = [f"{name}={labels[name]}" for name in CORRELATION_LABELS if labels.get(name)]
    return keys or [f"alertname={labels.get('alertname', '')}"]


@dataclass
class Filed:
    """What filing a group changed, per incident."""

    opened: set[int] = field(default_factory=set)
    joined: set[int] = field(default_factory=set)  # alerts joined an incident already open
    resolved: set[int] = field(default_factory=set)  # some of the incident's alerts resolved

    @property
    def touched(self) -> set[int]:
        return self.opened | self.joined | self.resolved

    def merge(self, other: Filed) -> None:
        self.opened |= other.opened
        self.joined |= other.joined
        self.resolved |= other.resolved


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


async def file_alerts(
    conn: asyncpg.Connection,
    group_key: str,
    receiver: str,
    policy: str,
    firing: Sequence[GroupAlert],
    resolved: Sequence[GroupAlert],
    values: Mapping[str, float],
    now: float,
) -> Filed:
    """File a flushed group's visible firing alerts and its resolved ones into incidents."""
    filed = Filed()
    if not firing and not resolved:
        return filed
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _FILING_LOCK)
    for alert in resolved:
        rows = await conn.fetch(
            """UPDATE incident_alerts a SET state = 'resolved', ends_at = $2, value = $3
               FROM incidents i
               WHERE a.incident_id = i.incident_id AND i.status <> 'resolved'
                 AND a.fingerprint = $1 AND a.state = 'firing'
               RETURNING a.incident_id""",
            alert.fingerprint,
            _ts(alert.ends_at if alert.ends_at is not None else now),
            values.get(alert.fingerprint, 0.0),
        )
        for r in rows:
            filed.resolved.add(r["incident_id"])
            await _alert_event(conn, r["incident_id"], "alert_resolved", alert, now)
    for alert in firing:
        await _file_firing(conn, group_key, receiver, policy, alert, values, now, filed)
    return filed


async def _file_firing(
    conn: asyncpg.Connection,
    group_key: str,
    receiver: str,
    policy: str,
    alert: GroupAlert,
    values: Mapping[str, float],
    now: float,
    filed: Filed,
) -> None:
    value = values.get(alert.fingerprint, 0.0)
    current = await conn.fetchrow(
        """SELECT a.incident_id, a.state FROM incident_alerts a JOIN incidents i
               USING (incident_id)
           WHERE a.fingerprint = $1 AND i.status <> 'resolved' LIMIT 1""",
        alert.fingerprint,
    )
    if current is not None:
        await conn.execute(
            """UPDATE incident_alerts SET labels = $3, annotations = $4, value = $5,
                   state = 'firing', ends_at = NULL,
                   starts_at = CASE WHEN state = 'resolved' THEN $6 ELSE starts_at END
               WHERE incident_id = $1 AND fingerprint = $2""",
            current["incident_id"],
            alert.fingerprint,
            alert.labels,
            alert.annotations,
            value,
            _ts(alert.starts_at),
        )
        if current["state"] == "resolved":  # fired again while its incident is open
            filed.joined.add(current["incident_id"])
            await _alert_event(conn, current["incident_id"], "alert_firing", alert, now)
        return
    keys = correlation_keys(alert.labels)
    incident_id = await conn.fetchval(
        """SELECT incident_id FROM incidents
           WHERE status <> 'resolved' AND policy = $1 AND receiver = $2 AND correlation && $3
           ORDER BY incident_id LIMIT 1 FOR UPDATE""",
        policy,
        receiver,
        keys,
    )
    if incident_id is None:
        title = alert.annotations.get("summary") or alert.labels.get("alertname", group_key)
        incident_id = await open_incident(
            conn, title, policy, now, receiver=receiver, correlation=keys
        )
        assert incident_id is not None  # no group key: never a conflict
        filed.opened.add(incident_id)
    else:
        await conn.execute(
            """UPDATE incidents SET correlation = ARRAY(
                   SELECT DISTINCT k FROM unnest(correlation || $2::text[]) AS k ORDER BY k)
               WHERE incident_id = $1""",
            incident_id,
            keys,
        )
        if incident_id not in filed.opened:
            filed.joined.add(incident_id)
    await conn.execute(
        """INSERT INTO incident_alerts (incident_id, fingerprint, group_key, labels, annotations,
                                        state, value, starts_at, ends_at, joined_at)
           VALUES ($1, $2, $3, $4, $5, 'firing', $6, $7, NULL, $8)""",
        incident_id,
        alert.fingerprint,
        group_key,
        alert.labels,
        alert.annotations,
        value,
        _ts(alert.starts_at),
        _ts(now),
    )
    await _alert_event(conn, incident_id, "alert_firing", alert, now)


async def _alert_event(
    conn: asyncpg.Connection, incident_id: int, kind: str, alert: GroupAlert, now: float
) -> None:
    detail = {"alertname": alert.labels.get("alertname", ""), "fingerprint": alert.fingerprint}
    summary = alert.annotations.get("summary")
    if summary:
        detail["summary"] = summary
    await record(conn, incident_id, kind, "alerting", now, detail)
