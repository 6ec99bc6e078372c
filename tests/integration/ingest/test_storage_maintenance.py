"""Partition upkeep and idempotency-record pruning against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
from aiohttp import web

from control_plane.appkeys import CONFIG, POOL
from control_plane.config import ControlPlaneConfig, RetentionConfig
from control_plane.maintenance import Maintenance, maintenance_ctx
from control_plane.store import partitions

D = dt.date
T0 = dt.datetime(2024, 3, 10, 12, tzinfo=dt.UTC).timestamp()
DAY = 86_400.0


async def days(pool: asyncpg.Pool) -> list[dt.date]:
    async with pool.acquire() as conn:
        return await partitions.existing_partitions(conn)


async def test_partitions_are_created_ahead_and_dropped_after_retention(
    pool: asyncpg.Pool,
) -> None:
    now = T0
    m = Maintenance(
        pool, RetentionConfig(retention_days=3, partitions_ahead_days=2), clock=lambda: now
    )
    first = await m.run_once()
    assert first is not None
    assert first.created == [D(2024, 3, d) for d in range(7, 13)] and first.dropped == []
    assert await days(pool) == first.created
    again = await m.run_once()
    assert again is not None and again.created == [] and again.dropped == []

    # a sample on the oldest day and one today; idempotency records old and new
    old, new = T0 - 3 * DAY + 60, T0
    await pool.executemany(
        "INSERT INTO samples VALUES (1, to_timestamp($1), $2)", [(old, 1.0), (new, 2.0)]
    )
    await pool.executemany(
        """INSERT INTO ingested_reports (agent_id, report_id, sample_count, received_at)
           VALUES ('a', gen_random_uuid(), 1, to_timestamp($1))""",
        [(old,), (new,)],
    )
    now = T0 + 2 * DAY
    later = await m.run_once()
    assert later is not None
    assert later.created == [D(2024, 3, 13), D(2024, 3, 14)]
    assert later.dropped == [D(2024, 3, 7), D(2024, 3, 8)]
    assert later.reports_pruned == 1
    assert await days(pool) == [D(2024, 3, d) for d in range(9, 15)]
    assert [r["value"] for r in await pool.fetch("SELECT value FROM samples")] == [2.0]
    assert await pool.fetchval("SELECT count(*) FROM ingested_reports") == 1


async def test_only_one_replica_does_maintenance_at_a_time(pool: asyncpg.Pool) -> None:
    m = Maintenance(pool, RetentionConfig(), clock=lambda: T0)
    async with pool.acquire() as other:
        await other.execute("SELECT pg_advisory_lock($1)", 0x48AE7B0)
        assert await m.run_once() is None
        assert await days(pool) == []
        await other.execute("SELECT pg_advisory_unlock($1)", 0x48AE7B0)
    assert await m.run_once() is not None


async def test_maintenance_ctx_runs_at_start_and_on_schedule(pool: asyncpg.Pool) -> None:
    app = web.Application()
    app[CONFIG] = ControlPlaneConfig(
        retention=RetentionConfig(
            retention_days=2, partitions_ahead_days=1, maintenance_interval_s=0.2
        )
    )
    app[POOL] = pool
    ctx = maintenance_ctx(app)
    await ctx.__anext__()
    # at start: today, back to retention, one day ahead
    today = partitions.day_of(dt.datetime.now(dt.UTC).timestamp())
    assert today in await days(pool) and today + dt.timedelta(days=1) in await days(pool)
    # a partition dropped behind its back is recreated by the next scheduled round
    tomorrow = partitions.partition_name(today + dt.timedelta(days=1))
    await pool.execute(f'DROP TABLE "{tomorrow}"')
    for _ in range(50):
        await asyncio.sleep(0.05)
        if today + dt.timedelta(days=1) in await days(pool):
            break
    assert today + dt.timedelta(days=1) in await days(pool)
    await ctx.aclose()
