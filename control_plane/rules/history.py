"""Reading alerts back for the API: the active ones and the transition history (keyset pages,
newest first)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

from control_plane.query.cursor import encode_cursor
from control_plane.rules.state import AlertState


@dataclass(frozen=True)
class HistoryQuery:
    limit: int
    before_id: int | None = None
    rule: str | None = None
    fingerprint: str | None = None
    state: AlertState | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class HistoryPage:
    events: list[dict[str, Any]]
    next_cursor: str | None


async def active_alerts(
    pool: asyncpg.Pool, *, rule: str | None = None, state: AlertState | None = None
) -> list[dict[str, Any]]:
    """Pending and firing alerts of every shard (so any control plane can answer)."""
    states = [state.value] if state else [AlertState.PENDING.value, AlertState.FIRING.value]
    rows = await pool.fetch(
        """SELECT * FROM alert_states
           WHERE state = ANY($1::text[]) AND ($2::text IS NULL OR rule_name = $2)
           ORDER BY rule_name, fingerprint""",
        states,
        rule,
    )
    return [
        {
            "rule": r["rule_name"],
            "fingerprint": r["fingerprint"],
            "state": r["state"],
            "labels": r["labels"],
            "annotations": r["annotations"],
            "value": _json_float(r["value"]),
            "active_at": _iso(r["active_at"]),
            "fired_at": _iso(r["fired_at"]),
            "flapping": r["flapping"],
        }
        for r in rows
    ]


async def alert_history(pool: asyncpg.Pool, q: HistoryQuery) -> HistoryPage:
    rows = await pool.fetch(
        """SELECT * FROM alert_events
           WHERE ($1::bigint IS NULL OR event_id < $1)
             AND ($2::text IS NULL OR rule_name = $2)
             AND ($3::text IS NULL OR fingerprint = $3)
             AND ($4::text IS NULL OR state = $4)
             AND ($5::timestamptz IS NULL OR at >= $5)
             AND ($6::timestamptz IS NULL OR at < $6)
           ORDER BY event_id DESC
           LIMIT $7""",
        q.before_id,
        q.rule,
        q.fingerprint,
        q.state.value if q.state else None,
        _ts(q.since),
        _ts(q.until),
        q.limit + 1,
    )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    events = [
        {
            "id": r["event_id"],
            "at": _iso(r["at"]),
            "rule": r["rule_name"],
            "fingerprint": r["fingerprint"],
            "labels": r["labels"],
            "previous": r["previous"],
            "state": r["state"],
            "flapping": r["flapping"],
            "value": _json_float(r["value"]),
            "annotations": r["annotations"],
        }
        for r in rows
    ]
    cursor = encode_cursor(rows[-1]["event_id"]) if more and rows else None
    return HistoryPage(events, cursor)


def _ts(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _json_float(v: float) -> float | str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return v
