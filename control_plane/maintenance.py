"""Storage upkeep: sample partitions created ahead and dropped after retention, idempotency
records pruned after retention, and series nothing reported within retention deleted
(``store/series_gc.py``).

It runs at start and then every ``maintenance_interval_s`` (APScheduler), and only on one
replica at a time: the run holds a session-level Postgres advisory lock and a replica that
cannot take it skips that round.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from control_plane.appkeys import CONFIG, POOL
from control_plane.config import RetentionConfig
from control_plane.store import partitions, series_gc

_LOCK_KEY = 0x48AE7B0  # "haetae maintenance"
# Idempotency records are deleted in slices so no single statement holds locks for long.
_PRUNE_BATCH = 50_000
_PRUNE = """
DELETE FROM ingested_reports WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM ingested_reports WHERE received_at < $1 LIMIT $2))
"""


@dataclass
class MaintenanceResult:
    created: list[dt.date] = field(default_factory=list)
    dropped: list[dt.date] = field(default_factory=list)
    reports_pruned: int = 0
    series_pruned: int = 0


class Maintenance:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cfg: RetentionConfig,
        *,
        clock: Callable[[], float] = time.time,
        log: logging.Logger | None = None,
    ) -> None:
        self._pool = pool
        self._cfg = cfg
        self._clock = clock
        self._log = log or logging.getLogger("control_plane.maintenance")

    async def run_once(self) -> MaintenanceResult | None:
        """One round; None when another replica holds the lock (it is doing the work)."""
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
                return None
            try:
                return await self._run(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)

    async def run_logged(self) -> None:
        """The scheduled job: a failed round is logged and retried at the next interval."""
        try:
            result = await self.run_once()
        except Exception:
            self._log.exception("storage maintenance failed")
            return
        if result is not None and (
            result.created or result.dropped or result.reports_pruned or result.series_pruned
        ):
            self._log.info(
                "storage maintenance: %d partitions created, %d dropped, %d reports pruned, "
                "%d series pruned",
                len(result.created),
                len(result.dropped),
                result.reports_pruned,
                result.series_pruned,
            )

    async def _run(self, conn: asyncpg.Connection) -> MaintenanceResult:
        now = self._clock()
        todo = partitions.plan(
            now,
            await partitions.existing_partitions(conn),
            self._cfg.retention_days,
            self._cfg.partitions_ahead_days,
        )
        result = MaintenanceResult()
        result.created = await partitions.create_partitions(conn, todo.create)
        result.dropped = await partitions.drop_partitions(conn, todo.drop)
        cutoff = dt.datetime.fromtimestamp(
            partitions.retention_cutoff(now, self._cfg.retention_days), dt.UTC
        )
        while True:
            status = await conn.execute(_PRUNE, cutoff, _PRUNE_BATCH)
            deleted = int(status.split()[-1])
            result.reports_pruned += deleted
            if deleted < _PRUNE_BATCH:
                break
        # After the partitions past retention are gone: their samples no longer hold series.
        result.series_pruned = await series_gc.prune_series(conn, now, self._cfg.retention_days)
        return result


async def maintenance_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: one maintenance round before the app serves (so today's partitions
    exist), then one every ``retention.maintenance_interval_s``."""
    maintenance = Maintenance(app[POOL], app[CONFIG].retention)
    await maintenance.run_once()
    scheduler = AsyncIOScheduler(timezone=dt.UTC)
    scheduler.add_job(
        maintenance.run_logged,
        "interval",
        seconds=app[CONFIG].retention.maintenance_interval_s,
        id="storage-maintenance",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)
