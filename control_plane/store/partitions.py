"""Daily partitions of ``samples``: ``samples_pYYYYMMDD`` holds ``[day 00:00 UTC, next day)``.

The date math (:func:`plan`, :func:`retention_cutoff`, names) is pure; the rest runs the DDL.
Every partition DDL statement, whether from the maintenance job or from ingest creating a missing
day on demand, runs under one transaction-scoped advisory lock so replicas never race each other.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

PARENT = "samples"
_NAME = re.compile(r"^samples_p(\d{8})$")
_DDL_LOCK = 0x48AE7AF  # "haetae partition DDL"
DAY = dt.timedelta(days=1)
DAY_S = 86_400.0


def partition_name(day: dt.date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def parse_partition_name(name: str) -> dt.date | None:
    m = _NAME.match(name)
    if m is None:
        return None
    try:
        return dt.datetime.strptime(m[1], "%Y%m%d").date()
    except ValueError:
        return None


def day_of(ts: float) -> dt.date:
    """The UTC day a unix timestamp falls in."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).date()


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start, start + DAY


def retention_cutoff(now: float, retention_days: int) -> float:
    """Samples older than this (unix seconds) are past retention: not stored."""
    return now - retention_days * DAY_S


def oldest_kept_day(now: float, retention_days: int) -> dt.date:
    return day_of(retention_cutoff(now, retention_days))


def wanted_days(now: float, retention_days: int, ahead_days: int) -> list[dt.date]:
    """Every day that should have a partition: back to the retention cutoff, ``ahead_days``
    after today."""
    first = oldest_kept_day(now, retention_days)
    last = day_of(now) + dt.timedelta(days=ahead_days)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def storable_day(day: dt.date, now: float, retention_days: int, ahead_days: int) -> bool:
    """May ingest create a partition for ``day`` on demand?"""
    return (
        oldest_kept_day(now, retention_days) <= day <= day_of(now) + dt.timedelta(days=ahead_days)
    )


@dataclass(frozen=True)
class PartitionPlan:
    create: list[dt.date]
    drop: list[dt.date]


def plan(
    now: float, existing: Iterable[dt.date], retention_days: int, ahead_days: int
) -> PartitionPlan:
    """What to create (missing wanted days) and drop (days wholly past retention)."""
    have = set(existing)
    keep_from = oldest_kept_day(now, retention_days)
    create = [d for d in wanted_days(now, retention_days, ahead_days) if d not in have]
    drop = sorted(d for d in have if d < keep_from)
    return PartitionPlan(create, drop)


# -- SQL ------------------------------------------------------------------------------------


async def existing_partitions(conn: asyncpg.Connection) -> list[dt.date]:
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = $1::regclass""",
        PARENT,
    )
    days = (parse_partition_name(r["relname"]) for r in rows)
    return sorted(d for d in days if d is not None)


async def create_partitions(conn: asyncpg.Connection, days: Iterable[dt.date]) -> list[dt.date]:
    """Create the partitions for ``days`` that do not exist yet; returns the ones created."""
    days = sorted(set(days))
    if not days:
        return []
    created = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK)
        have = set(await existing_partitions(conn))
        for day in days:
            if day in have:
                continue
            start, end = day_bounds(day)
            name = partition_name(day)
            # CREATE + ATTACH rather than CREATE ... PARTITION OF: ATTACH needs only a SHARE
            # UPDATE EXCLUSIVE lock on the parent, so it does not queue behind (and block)
            # ingest transactions. Identifiers and bounds come from a date: safe to format.
            await conn.execute(
                f'CREATE TABLE "{name}" (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
            )
            await conn.execute(
                f'ALTER TABLE {PARENT} ATTACH PARTITION "{name}" '
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
            created.append(day)
    return created


async def drop_partitions(
    conn: asyncpg.Connection, days: Iterable[dt.date], *, lock_timeout_s: float = 5.0
) -> list[dt.date]:
    """Drop the partitions of ``days``; returns the ones dropped. DROP needs an exclusive lock
    on the parent, so each waits at most ``lock_timeout_s`` (ingest queues behind a waiting
    DROP); one that times out is left for the next maintenance round."""
    dropped = []
    for day in sorted(set(days)):
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _DDL_LOCK)
                await conn.execute(f'DROP TABLE IF EXISTS "{partition_name(day)}"')
        except asyncpg.LockNotAvailableError:
            continue
        dropped.append(day)
    return dropped
