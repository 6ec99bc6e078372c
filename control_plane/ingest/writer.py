"""Group commit of agent reports into PostgreSQL.

``submit`` queues a report and returns only after the flush that contains it has committed, so
a 200 to the agent means "durably stored". Each flush is ONE transaction:

1. the batch's report ids go into ``ingested_reports`` (``ON CONFLICT DO NOTHING RETURNING``):
   the ids returned are the reports new to the database; the rest are duplicates, including a
   retry racing its original on another replica (the unique index makes the later one wait);
2. the new reports' samples are binary-COPied into ``samples``;
3. the agents' ``last_seen_at`` / ``last_seq`` are updated.

Any failure rolls the whole transaction back: nothing is half written. Series rows and missing
partitions are created just before the transaction, on their own; both are idempotent and
harmless if the batch then fails. What happens next depends on the failure:

* the data (PostgreSQL refused a value: ``DataError``, ``ProgramLimitExceededError``, ...): decode
  refuses all we know of, so this is a gap in it; the batch is split in halves and each written
  again, down to the report at fault, which alone fails with :class:`IngestRejected` (422, the
  agent dead-letters it); every other report of the flush is stored;
* anything else (connection lost, database down): every waiter of the batch fails with
  :class:`IngestUnavailable` (503, the agent retries).

Before any series row is written, the reports that would create series are admitted against the
cardinality limits (``limits.py``); a report over a limit fails alone with
:class:`SeriesLimitExceeded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import asyncpg
from prometheus_client import Counter, Gauge

from control_plane.config import IngestConfig, RetentionConfig
from control_plane.ingest.batch import (
    PreparedReport,
    ReportKey,
    prepare,
    report_key,
    split_first_copies,
)
from control_plane.ingest.decode import Report
from control_plane.ingest.errors import IngestRejected, IngestUnavailable
from control_plane.ingest.limits import SeriesBudget, SeriesLimit, SeriesLimitExceeded
from control_plane.ingest.series import SeriesKey, SeriesResolver, count_per_agent
from control_plane.ingest.windows import SeriesWindows
from control_plane.store import partitions
from control_plane.telemetry import ControlPlaneMetrics

_INSERT_REPORTS = """
INSERT INTO ingested_reports (agent_id, report_id, seq, sample_count)
SELECT a, r::uuid, s, n
FROM unnest($1::text[], $2::text[], $3::int8[], $4::int4[]) AS t(a, r, s, n)
ORDER BY t.a, t.r
ON CONFLICT (agent_id, report_id) DO NOTHING
RETURNING agent_id, report_id::text
"""
# Rows are locked in agent_id order so concurrent flushes (or replicas) cannot deadlock.
_TOUCH_AGENTS = """
UPDATE agents a SET last_seen_at = now(), last_seq = COALESCE(v.seq, a.last_seq)
FROM (SELECT t.agent_id, t.seq
      FROM unnest($1::text[], $2::int8[]) AS t(agent_id, seq)
      JOIN agents l ON l.agent_id = t.agent_id
      ORDER BY t.agent_id
      FOR UPDATE OF l) AS v
WHERE a.agent_id = v.agent_id
"""
_COPY_COLUMNS = ("series_id", "ts", "value")
# PostgreSQL's "no partition of relation found for row".
_NO_PARTITION = "23514"
# Pending work beyond this many flushes' worth is refused with a 503: memory stays bounded.
_PENDING_FLUSHES = 4
_EVICT_EVERY_S = 60.0
# What PostgreSQL (or asyncpg encoding a value) raises for a value it refuses: the report's fault.
# Connection loss and the like are not among them.
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.ProgramLimitExceededError,
    asyncpg.IntegrityConstraintViolationError,
    UnicodeError,
)
__all__ = ["IngestRejected", "IngestUnavailable", "Ingestor", "SubmitResult"]


class SubmitResult(NamedTuple):
    accepted: int
    duplicate: bool


Outcome = SubmitResult | IngestRejected


class _Waiter(NamedTuple):
    report: Report
    future: asyncio.Future[SubmitResult]
    arrived: float  # monotonic


class Ingestor:
    """Group-commit writer plus the in-memory series windows. Use as an async context manager:
    leaving it flushes what is pending and stops."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cfg: IngestConfig,
        retention: RetentionConfig,
        metrics: ControlPlaneMetrics,
        *,
        windows: SeriesWindows | None = None,
        clock: Callable[[], float] = time.time,
        max_concurrent_flushes: int = 2,
        log: logging.Logger | None = None,
    ) -> None:
        self._pool = pool
        self._cfg = cfg
        self._retention = retention
        self._metrics = metrics
        self._clock = clock
        self._log = log or logging.getLogger("control_plane.ingest")
        self.windows = windows or SeriesWindows(
            window_seconds=cfg.window_seconds, max_points=cfg.window_max_points
        )
        # The series cache never holds more than the live series the limits allow (+10 %).
        self.series = SeriesResolver(max_cached=cfg.max_series_global + cfg.max_series_global // 10)
        self.budget = SeriesBudget(cfg, clock=clock)
        self._next_count_at = 0.0
        # Series admission and creation (rows committed, then counted up in the budget) and the
        # recount never overlap: a count that already saw another flush's new rows, applied
        # before that flush counted them up, would hold them twice until the next recount (and
        # refuse reports); two flushes admitted against the same count could pass a limit.
        self._counting = asyncio.Lock()
        self._limited = Counter(
            "haetae_ingest_limited",
            "Reports refused by a series cardinality limit, by limit.",
            ["limit"],
            registry=metrics.registry,
        )
        for limit in SeriesLimit:
            self._limited.labels(limit.value)
        self._live_series = Gauge(
            "haetae_ingest_live_series",
            "Series rows as this replica counts them (for the limits).",
            registry=metrics.registry,
        )
        self._known_days: set[dt.date] = set()
        self._pending: list[_Waiter] = []
        self._pending_samples = 0
        self._max_pending = max(
            _PENDING_FLUSHES * cfg.flush_max_samples, cfg.max_samples_per_report
        )
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        # Two flushes in flight let Python prepare one batch while PostgreSQL writes the other.
        self._slots = asyncio.Semaphore(max_concurrent_flushes)
        self._inflight: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._last_evict = 0.0
        # Called after each commit that added samples to the windows (the rule engine's wake).
        self.commit_listeners: list[Callable[[], None]] = []
        # Called with the newly stored reports of each commit, before the commit listeners
        # (replication to the other replicas: ingest/replicate.py). Must not block.
        self.sample_listeners: list[Callable[[list[PreparedReport], float], None]] = []
        # Awaited inside each commit's transaction with its newly stored reports, after their
        # samples are copied: what they write commits (or rolls back) with the samples (the
        # remote-write outbox: forward/outbox.py).
        self.transaction_stages: list[
            Callable[[asyncpg.Connection, list[PreparedReport]], Awaitable[None]]
        ] = []

    async def __aenter__(self) -> Ingestor:
        self._runner = asyncio.create_task(self._run(), name="ingest-flusher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop accepting reports, flush the pending ones, wait for flushes in flight."""
        self._closing = True
        self._wake.set()
        self._full.set()
        if self._runner is not None:
            await self._runner
            self._runner = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    @property
    def pending_samples(self) -> int:
        return self._pending_samples

    async def submit(self, report: Report) -> SubmitResult:
        """Store ``report``; returns once it is committed (or known to be a duplicate).

        Raises :class:`IngestUnavailable` when it could not be stored (retry later), and
        :class:`IngestRejected` when this report cannot be stored as it is."""
        if self._closing or self._runner is None:
            raise IngestUnavailable("the ingestor is not running", retry_after_s=5.0)
        n = len(report.samples)
        if self._pending and self._pending_samples + n > self._max_pending:
            raise IngestUnavailable("ingest is overloaded", retry_after_s=2.0)
        future: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Waiter(report, future, time.monotonic()))
        self._pending_samples += n
        self._metrics.ingest_pending_samples.set(self._pending_samples)
        self._wake.set()
        if report.urgent or self._pending_samples >= self._cfg.flush_max_samples:
            # An urgent report (pushed samples) is committed without lingering for a batch.
            self._full.set()
        return await future

    # -- the flusher ---------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if await self._run_once():
                    return
            except Exception:  # pragma: no cover - a bug; never leave submitters hanging
                self._log.exception("ingest flusher failed; failing the pending reports")
                batch, self._pending = self._pending, []
                self._pending_samples = 0
                for w in batch:
                    if not w.future.done():
                        w.future.set_exception(IngestUnavailable("internal ingest error"))

    async def _run_once(self) -> bool:
        """Wait for work and start one flush; True once closed and drained."""
        await self._wake.wait()
        if not self._pending:
            self._wake.clear()
            return self._closing
        # Linger up to flush_interval_s after the oldest pending report to gather a batch,
        # unless enough samples are already waiting.
        linger = self._pending[0].arrived + self._cfg.flush_interval_s - time.monotonic()
        if linger > 0 and not self._full.is_set() and not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), linger)
        await self._slots.acquire()
        task = asyncio.create_task(self._flush(self._take_batch()), name="ingest-flush")
        self._inflight.add(task)
        task.add_done_callback(self._flush_done)
        return False

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()

    def _take_batch(self) -> list[_Waiter]:
        limit = self._cfg.flush_max_samples
        taken = 0
        count = 0
        for w in self._pending:
            n = len(w.report.samples)
            if count and taken + n > limit:
                break
            taken += n
            count += 1
        batch = self._pending[:count]
        del self._pending[:count]
        self._pending_samples -= taken
        self._metrics.ingest_pending_samples.set(self._pending_samples)
        if self._pending_samples < limit:
            self._full.clear()
        if not self._pending and not self._closing:
            self._wake.clear()
        return batch

    async def _flush(self, batch: list[_Waiter]) -> None:
        started = time.perf_counter()
        try:
            results = await self._write_isolating([w.report for w in batch])
        except Exception as exc:
            self._log.warning(
                "ingest flush failed; %d reports will be retried by their agents",
                len(batch),
                exc_info=exc,
            )
            self._metrics.ingest_reports.labels("failed").inc(len(batch))
            error = IngestUnavailable("the database is unavailable")
            error.__cause__ = exc
            for w in batch:
                if not w.future.done():
                    w.future.set_exception(error)
            return
        finally:
            self._metrics.ingest_flush_duration.observe(time.perf_counter() - started)
        for w, result in zip(batch, results, strict=True):
            if w.future.done():  # the caller may have gone away (client disconnect)
                continue
            if isinstance(result, IngestRejected):
                w.future.set_exception(result)
            else:
                w.future.set_result(result)

    async def _write_isolating(self, reports: list[Report]) -> list[Outcome]:
        """:meth:`_write`, and when PostgreSQL refuses the data, the halves on their own, down
        to the one report at fault (log2(n) extra writes for one bad report among n)."""
        try:
            return await self._write(reports)
        except _DATA_ERRORS as exc:
            if len(reports) == 1:
                self._metrics.ingest_reports.labels("rejected").inc()
                self._log.warning(
                    "report %s of agent %s refused by PostgreSQL: %s",
                    reports[0].report_id,
                    reports[0].agent_id,
                    exc,
                )
                # The first line says what (PostgreSQL's DETAIL/HINT lines name internals).
                reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
                return [IngestRejected(f"PostgreSQL refused the report's data: {reason}")]
            self._log.info(
                "a flush of %d reports failed on their data (%s); writing the halves apart",
                len(reports),
                type(exc).__name__,
            )
        mid = len(reports) // 2
        return await self._write_isolating(reports[:mid]) + await self._write_isolating(
            reports[mid:]
        )

    async def _write(self, reports: list[Report]) -> list[Outcome]:
        try:
            return await self._write_once(reports)
        except asyncpg.PostgresError as exc:
            if exc.sqlstate != _NO_PARTITION:
                raise
            # A partition we believed in is gone (dropped by another replica): re-check, retry.
            self._known_days.clear()
            return await self._write_once(reports)

    async def _write_once(self, reports: list[Report]) -> list[Outcome]:
        now = self._clock()
        cutoff = partitions.retention_cutoff(now, self._retention.retention_days)
        firsts, _ = split_first_copies(reports)
        # CPU work first, before holding a connection.
        missing: dict[SeriesKey, dict[str, str]] = {}
        timestamps: dict[float, dt.datetime] = {}
        known = self.series.known
        newest = self.windows.newest
        prepared = [prepare(r, cutoff, known, missing, timestamps, newest) for r in firsts]
        refused: dict[ReportKey, IngestRejected] = {}
        async with self._pool.acquire() as conn:
            if now >= self._next_count_at:
                await self._count_series(conn, now)
            if missing:
                # Admitted and created under one lock: a concurrent flush admits against a
                # budget that already holds these series.
                async with self._counting:
                    prepared, missing, refused = await self._admit(conn, prepared, missing)
                    if missing:
                        created, per_agent = await self.series.resolve_counting(conn, missing)
                        self.budget.created(per_agent)
                self._live_series.set(self.budget.live_total)
                if missing:
                    for p in prepared:
                        p.resolve(created)
            if timestamps:
                await self._ensure_partitions(conn, min(timestamps), max(timestamps), now)
            async with conn.transaction():
                rows = await conn.fetch(
                    _INSERT_REPORTS,
                    [p.key[0] for p in prepared],
                    [p.key[1] for p in prepared],
                    [p.report.seq for p in prepared],
                    [len(p.report.samples) for p in prepared],
                )
                fresh = {(r[0], r[1]) for r in rows}
                new = [p for p in prepared if p.key in fresh]
                records = list(itertools.chain.from_iterable(p.records for p in new))
                if records:
                    await conn.copy_records_to_table(
                        "samples", records=records, columns=_COPY_COLUMNS
                    )
                    for stage in self.transaction_stages:
                        await stage(conn, new)
                await conn.execute(_TOUCH_AGENTS, *_agent_touches(reports, fresh))
        return self._after_commit(reports, new, now, refused)

    async def _count_series(self, conn: asyncpg.Connection, now: float) -> None:
        # Re-read at most every series_count_refresh_s: other replicas' series, pruned ones.
        self._next_count_at = now + self._cfg.series_count_refresh_s
        async with self._counting:
            self.budget.set_live(await count_per_agent(conn))
        self._live_series.set(self.budget.live_total)

    async def _admit(
        self,
        conn: asyncpg.Connection,
        prepared: list[PreparedReport],
        missing: dict[SeriesKey, dict[str, str]],
    ) -> tuple[
        list[PreparedReport], dict[SeriesKey, dict[str, str]], dict[ReportKey, IngestRejected]
    ]:
        """The reports whose new series fit the limits (in batch order), the series to resolve
        for them, and the refusals of the others."""
        wanted = [(p, {key for _, key in p.unresolved}) for p in prepared]
        admission = self.budget.admission()
        exists: set[SeriesKey] = set()
        # A missing series is usually a new one; only when counting them all as new would pass
        # a limit are they looked up (some may exist: cache expiry, another replica).
        if not admission.fits((p.report.agent_id, len(keys)) for p, keys in wanted):
            exists = await self.series.existing(conn, missing)
        admitted: list[PreparedReport] = []
        needed: dict[SeriesKey, dict[str, str]] = {}
        refused: dict[ReportKey, IngestRejected] = {}
        for p, keys in wanted:
            new = keys - exists - needed.keys()
            try:
                admission.admit(p.report.agent_id, len(new))
            except SeriesLimitExceeded as exc:
                refused[p.key] = exc
                self._limited.labels(exc.limit.value).inc()
                self._log.warning("report %s refused: %s", p.report.report_id, exc.detail)
                continue
            admitted.append(p)
            for key in keys:
                needed[key] = missing[key]
        return admitted, needed, refused

    def _after_commit(
        self,
        reports: list[Report],
        new: list[PreparedReport],
        now: float,
        refused: dict[ReportKey, IngestRejected],
    ) -> list[Outcome]:
        by_key = {p.key: p for p in new}
        results: list[Outcome] = []
        stored = expired = rejected = 0
        for r in reports:
            key = report_key(r)
            rejection = refused.get(key)
            if rejection is not None:  # every copy of it
                results.append(rejection)
                rejected += 1
                continue
            # pop: a second copy of the same report in this batch is a duplicate.
            p = by_key.pop(key, None)
            if p is None:
                results.append(SubmitResult(0, True))
                continue
            results.append(SubmitResult(len(r.samples), False))
            stored += p.stored
            expired += p.expired
        m = self._metrics
        m.ingest_reports.labels("stored").inc(len(new))
        m.ingest_reports.labels("duplicate").inc(len(reports) - len(new) - rejected)
        m.ingest_reports.labels("rejected").inc(rejected)
        m.ingest_samples.inc(stored)
        m.ingest_samples_expired.inc(expired)
        self.windows.add(itertools.chain.from_iterable(p.window_items() for p in new), now)
        if new:
            for publish in self.sample_listeners:
                try:
                    publish(new, now)
                except Exception:  # pragma: no cover - a bug there must not fail the commit
                    self._log.exception("a sample listener failed")
            for notify in self.commit_listeners:
                notify()
        if now - self._last_evict >= _EVICT_EVERY_S:
            self._last_evict = now
            self.windows.evict(now)
        m.window_series.set(len(self.windows))
        return results

    async def _ensure_partitions(
        self, conn: asyncpg.Connection, first_ts: float, last_ts: float, now: float
    ) -> None:
        # Expired samples never get here; the upper bound keeps a clock gone wild from creating
        # partitions far in the future (such a batch fails and is retried, never half-written).
        last_allowed = partitions.day_of(
            now + max(self._cfg.max_future_skew_s, self._retention.partitions_ahead_days * 86400)
        )
        first = partitions.day_of(first_ts)
        last = min(partitions.day_of(last_ts), last_allowed)
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        needed = [d for d in days if d not in self._known_days]
        if not needed:
            return
        await partitions.create_partitions(conn, needed)
        self._known_days.update(needed)


def _agent_touches(
    reports: list[Report], fresh: set[tuple[str, str]]
) -> tuple[list[str], list[int | None]]:
    """Every agent heard from in the batch, with the seq of its latest new report."""
    seqs: dict[str, int | None] = {}
    for r in reports:
        if (r.agent_id, str(r.report_id)) in fresh and r.seq is not None:
            seqs[r.agent_id] = r.seq
        else:
            seqs.setdefault(r.agent_id, None)
    agents = sorted(seqs)
    return agents, [seqs[a] for a in agents]
