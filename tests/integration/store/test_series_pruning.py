"""Pruning series nothing reported within retention, against a real PostgreSQL, and how ingest's
series resolution (last_seen_at refresh, cache expiry) stays safe beside it."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from control_plane.config import RetentionConfig
from control_plane.ingest.series import SeriesResolver
from control_plane.maintenance import Maintenance
from control_plane.store.series_gc import prune_cutoff, prune_series

NOW = float(int(time.time()))
DAY = 86_400.0
RETENTION_DAYS = 2


async def add_series(pool: asyncpg.Pool, name: str, last_seen: float) -> int:
    sid: int = await pool.fetchval(
        """INSERT INTO series (agent_id, name, labels, labels_key, last_seen_at)
           VALUES ('web-1', $1, '{}'::jsonb, '{}', to_timestamp($2)) RETURNING series_id""",
        name,
        last_seen,
    )
    return sid


async def names(pool: asyncpg.Pool) -> set[str]:
    return {r[0] for r in await pool.fetch("SELECT name FROM series")}


@pytest.fixture
def maintenance(pool: asyncpg.Pool) -> Maintenance:
    return Maintenance(pool, RetentionConfig(retention_days=RETENTION_DAYS), clock=lambda: NOW)


async def test_unseen_series_without_samples_are_pruned_others_kept(
    pool: asyncpg.Pool, maintenance: Maintenance
) -> None:
    await maintenance.run_once()  # partitions
    old = NOW - 10 * DAY
    await add_series(pool, "gone", old)
    with_sample = await add_series(pool, "stamped_ahead", old)
    await pool.execute("INSERT INTO samples VALUES ($1, to_timestamp($2), 1.0)", with_sample, NOW)
    await add_series(pool, "fresh", NOW)
    # unseen for retention but within ingest's refresh interval (+ slack): kept
    await add_series(pool, "recent_enough", NOW - RETENTION_DAYS * DAY - 1800)
    result = await maintenance.run_once()
    assert result is not None and result.series_pruned == 1
    assert await names(pool) == {"stamped_ahead", "fresh", "recent_enough"}


async def test_pruning_walks_pages(pool: asyncpg.Pool) -> None:
    old = NOW - 10 * DAY
    for i in range(20):
        await add_series(pool, f"s{i}", old)
    keep = await add_series(pool, "live", NOW)
    async with pool.acquire() as conn:
        assert await prune_series(conn, NOW, RETENTION_DAYS, page=7) == 20
    assert await names(pool) == {"live"}
    assert await pool.fetchval("SELECT series_id FROM series") == keep


async def test_a_row_ingest_is_refreshing_is_skipped_not_waited_for(
    pool: asyncpg.Pool, maintenance: Maintenance
) -> None:
    await maintenance.run_once()
    sid = await add_series(pool, "busy", NOW - 10 * DAY)
    async with pool.acquire() as ingest:
        tx = ingest.transaction()
        await tx.start()
        # what the resolver's upsert does to an existing row
        await ingest.execute("UPDATE series SET last_seen_at = now() WHERE series_id = $1", sid)
        result = await asyncio.wait_for(maintenance.run_once(), 10.0)
        assert result is not None and result.series_pruned == 0
        await tx.commit()
    result = await maintenance.run_once()
    assert result is not None and result.series_pruned == 0
    assert await names(pool) == {"busy"}


async def test_resolver_refreshes_last_seen_when_its_cache_entry_expires(
    pool: asyncpg.Pool,
) -> None:
    mono = [1000.0]
    resolver = SeriesResolver(touch_max_s=600.0, clock=lambda: mono[0])
    key = ("web-1", "m", "{}")
    async with pool.acquire() as conn:
        (ref,) = (await resolver.resolve(conn, {key: {}})).values()
    assert resolver.known[key] == ref
    await pool.execute(
        "UPDATE series SET last_seen_at = now() - interval '30 days' WHERE series_id = $1",
        ref.series_id,
    )
    mono[0] += 100.0  # well before 50 % of touch_max_s (less two buckets): still cached
    assert key in resolver.known
    mono[0] += 510.0  # past touch_max_s: dropped, so the next flush resolves it again
    assert key not in resolver.known
    async with pool.acquire() as conn:
        (again,) = (await resolver.resolve(conn, {key: {}})).values()
    assert again.series_id == ref.series_id
    age = await pool.fetchval(
        "SELECT extract(epoch FROM now() - last_seen_at) FROM series WHERE series_id = $1",
        ref.series_id,
    )
    assert age < 60


async def test_resolving_a_series_being_pruned_makes_a_fresh_row(pool: asyncpg.Pool) -> None:
    sid = await add_series(pool, "m", NOW - 10 * DAY)
    resolver = SeriesResolver()
    key = ("web-1", "m", "{}")
    async with pool.acquire() as gc, pool.acquire() as conn:
        tx = gc.transaction()
        await tx.start()
        # the maintenance job has locked and deleted the row, not yet committed
        await gc.execute("SELECT series_id FROM series WHERE series_id = $1 FOR UPDATE", sid)
        await gc.execute("DELETE FROM series WHERE series_id = $1", sid)
        resolving = asyncio.create_task(resolver.resolve(conn, {key: {}}))
        await asyncio.sleep(0.3)
        assert not resolving.done()  # the upsert waits for the delete's outcome
        await tx.commit()
        (ref,) = (await asyncio.wait_for(resolving, 10.0)).values()
    assert ref.series_id != sid
    row = await pool.fetchrow("SELECT series_id, labels FROM series WHERE name = 'm'")
    assert row["series_id"] == ref.series_id and row["labels"] == {}


def test_cutoff_allows_for_the_refresh_interval() -> None:
    assert prune_cutoff(NOW, 14) < NOW - 14 * DAY - 3600
