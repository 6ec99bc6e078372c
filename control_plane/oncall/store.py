"""People, schedules and overrides in PostgreSQL (tables ``oncall_*``, migration 0004)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TypeAlias

import asyncpg

from control_plane.oncall.model import (
    Override,
    Schedule,
    User,
    schedule_from_row,
    user_from_row,
)
from control_plane.oncall.schedule import OnCall, oncall_at

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


async def get_user(conn: Conn, user_id: str) -> User | None:
    row = await conn.fetchrow("SELECT * FROM oncall_users WHERE user_id = $1", user_id)
    return None if row is None else user_from_row(row)


async def list_users(conn: Conn) -> list[User]:
    rows = await conn.fetch("SELECT * FROM oncall_users ORDER BY user_id")
    return [user_from_row(r) for r in rows]


async def put_user(conn: Conn, user: User) -> bool:
    """Create or replace; True when created."""
    created: bool = await conn.fetchval(
        """INSERT INTO oncall_users (user_id, name, timezone, contact_methods,
                                     notification_rules)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (user_id) DO UPDATE SET name = $2, timezone = $3, contact_methods = $4,
               notification_rules = $5, updated_at = now()
           RETURNING xmax = 0""",
        user.id,
        user.name,
        user.timezone,
        [c.to_json() for c in user.contact_methods],
        [r.to_json() for r in user.notification_rules],
    )
    return created


async def delete_user(conn: Conn, user_id: str) -> bool:
    status = await conn.execute("DELETE FROM oncall_users WHERE user_id = $1", user_id)
    return bool(status.endswith(" 1"))


async def schedules_with_user(conn: Conn, user_id: str) -> list[str]:
    rows = await conn.fetch(
        """SELECT schedule_id FROM oncall_schedules
           WHERE jsonb_path_exists(layers, '$[*].users[*] ? (@ == $u)',
                                   jsonb_build_object('u', $1::text))
           ORDER BY schedule_id""",
        user_id,
    )
    return [r["schedule_id"] for r in rows]


async def missing_users(conn: Conn, user_ids: Iterable[str]) -> list[str]:
    wanted = sorted(set(user_ids))
    rows = await conn.fetch(
        "SELECT user_id FROM oncall_users WHERE user_id = ANY($1::text[])", wanted
    )
    found = {r["user_id"] for r in rows}
    return [u for u in wanted if u not in found]


async def get_schedule(conn: Conn, schedule_id: str) -> Schedule | None:
    row = await conn.fetchrow("SELECT * FROM oncall_schedules WHERE schedule_id = $1", schedule_id)
    return None if row is None else schedule_from_row(row)


async def list_schedules(conn: Conn) -> list[Schedule]:
    rows = await conn.fetch("SELECT * FROM oncall_schedules ORDER BY schedule_id")
    return [schedule_from_row(r) for r in rows]


async def put_schedule(conn: Conn, schedule: Schedule) -> bool:
    created: bool = await conn.fetchval(
        """INSERT INTO oncall_schedules (schedule_id, name, timezone, layers)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (schedule_id) DO UPDATE SET name = $2, timezone = $3, layers = $4,
               updated_at = now()
           RETURNING xmax = 0""",
        schedule.id,
        schedule.name,
        schedule.timezone,
        [layer.to_json() for layer in schedule.layers],
    )
    return created


async def delete_schedule(conn: Conn, schedule_id: str) -> bool:
    status = await conn.execute("DELETE FROM oncall_schedules WHERE schedule_id = $1", schedule_id)
    return bool(status.endswith(" 1"))


async def list_overrides(
    conn: Conn, schedule_id: str, since: float | None = None, until: float | None = None
) -> list[Override]:
    """The schedule's overrides that overlap ``[since, until)`` (all when not given)."""
    rows = await conn.fetch(
        """SELECT * FROM oncall_overrides
           WHERE schedule_id = $1 AND ($2::timestamptz IS NULL OR ends_at > $2)
             AND ($3::timestamptz IS NULL OR starts_at < $3)
           ORDER BY starts_at, override_id""",
        schedule_id,
        None if since is None else _ts(since),
        None if until is None else _ts(until),
    )
    return [
        Override(
            r["override_id"], r["user_id"], r["starts_at"].timestamp(), r["ends_at"].timestamp()
        )
        for r in rows
    ]


async def add_override(
    conn: Conn, schedule_id: str, user_id: str, start: float, end: float, created_by: str
) -> Override:
    override_id: int = await conn.fetchval(
        """INSERT INTO oncall_overrides (schedule_id, user_id, starts_at, ends_at, created_by)
           VALUES ($1, $2, $3, $4, $5) RETURNING override_id""",
        schedule_id,
        user_id,
        _ts(start),
        _ts(end),
        created_by,
    )
    return Override(override_id, user_id, start, end)


async def delete_override(conn: Conn, schedule_id: str, override_id: int) -> bool:
    status = await conn.execute(
        "DELETE FROM oncall_overrides WHERE schedule_id = $1 AND override_id = $2",
        schedule_id,
        override_id,
    )
    return bool(status.endswith(" 1"))


async def who_is_on_call(conn: Conn, schedule_id: str, t: float) -> tuple[Schedule, OnCall | None]:
    """The schedule and who is on call in it at ``t``; LookupError when there is no such
    schedule."""
    schedule = await get_schedule(conn, schedule_id)
    if schedule is None:
        raise LookupError(schedule_id)
    return schedule, oncall_at(schedule, await list_overrides(conn, schedule_id, t, t + 1), t)
