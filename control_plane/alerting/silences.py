"""Silences in PostgreSQL: matchers plus a time span; the flush leaves silenced alerts out."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from control_plane.query.matchers import parse_matcher
from haetae.web.problem import invalid

# Bounds the admin API checks first; repeated here so no caller stores what the flush (which
# re-parses every active silence's matchers on each pass) or PostgreSQL would choke on.
MAX_SILENCE_MATCHERS = 32
MAX_COMMENT = 4096


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _iso(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def create_silence(
    pool: asyncpg.Pool,
    matchers: list[str],
    starts_at: float,
    ends_at: float,
    *,
    created_by: str,
    comment: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    if not 1 <= len(matchers) <= MAX_SILENCE_MATCHERS:
        raise invalid("matchers", f"1 to {MAX_SILENCE_MATCHERS} label matchers")
    for i, m in enumerate(matchers):
        parse_matcher(m, where=f"matchers[{i}]")  # validated before it is stored
    if len(comment) > MAX_COMMENT or "\x00" in comment:
        raise invalid("comment", f"at most {MAX_COMMENT} characters, without NUL")
    silence_id = uuid.uuid4()
    row = await pool.fetchrow(
        """INSERT INTO silences (silence_id, matchers, starts_at, ends_at, created_by, comment)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
        silence_id,
        matchers,
        _ts(starts_at),
        _ts(ends_at),
        created_by,
        comment,
    )
    assert row is not None
    # Timestamps are stored to the microsecond: judge the state with a margin for that.
    return silence_json(row, (starts_at if now is None else now) + 1e-6)


async def list_silences(pool: asyncpg.Pool, now: float, *, expired: bool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT * FROM silences WHERE $1 OR ends_at > $2 ORDER BY starts_at, silence_id",
        expired,
        _ts(now),
    )
    return [silence_json(r, now) for r in rows]


async def expire_silence(pool: asyncpg.Pool, silence_id: uuid.UUID, now: float) -> bool:
    """End a silence now; False when there is no such silence."""
    row = await pool.fetchrow(
        "UPDATE silences SET ends_at = LEAST(ends_at, $2) WHERE silence_id = $1 RETURNING 1",
        silence_id,
        _ts(now),
    )
    return row is not None


def silence_json(r: asyncpg.Record, now: float) -> dict[str, Any]:
    starts, ends = r["starts_at"].timestamp(), r["ends_at"].timestamp()
    state = "pending" if now < starts else ("active" if now < ends else "expired")
    return {
        "id": str(r["silence_id"]),
        "matchers": r["matchers"],
        "starts_at": _iso(r["starts_at"]),
        "ends_at": _iso(r["ends_at"]),
        "created_by": r["created_by"],
        "comment": r["comment"],
        "state": state,
    }
