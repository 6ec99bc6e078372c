"""The forwarder: outbox rows out to the remote store, each acknowledged before it is deleted.

``max_in_flight`` workers each claim a few rows (about one request's worth), send them as one or
more requests in order, and delete them once every request was acknowledged (or refused for
good). A failed request is sent again after a jittered exponential backoff (``Retry-After`` on a
429), renewing the claim's lease each time, for as long as it takes: while the store is down
the outbox just grows, bounded by ``forward.max_pending_samples`` (the oldest are dropped,
counted). A poison request (4xx other than 429) is dropped and counted, never retried.

Delivery is at least once: a sample is sent twice only when a replica dies (or loses
PostgreSQL) between the store's acknowledgement and the row's deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable

import asyncpg

from control_plane.alerting.retry import backoff_s
from control_plane.config import ForwardConfig
from control_plane.forward import batching, payload
from control_plane.forward.client import RemoteWriteClient
from control_plane.forward.errors import RejectedSendError, RetryableSendError
from control_plane.forward.labels import SeriesLabels
from control_plane.forward.metrics import ForwardMetrics, Outcome
from control_plane.forward.outbox import Outbox, Row
from control_plane.forward.wire import SampleEncoder

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_LEASE_SLACK_S = 30.0
_MAX_ROWS_PER_CLAIM = 1_000
# Stop: requests in flight get this long to be answered before the claims are released.
_STOP_GRACE_S = 5.0


def default_owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


class _LeaseLost(Exception):
    """Another replica took the rows over (our lease ran out): leave them to it."""


class _Stopping(Exception):
    """Stopped while a batch was still failing: release it for another replica."""


class Forwarder:
    """``start()`` / ``stop()``; ``wake()`` after a local commit (a commit listener)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        cfg: ForwardConfig,
        metrics: ForwardMetrics,
        client: RemoteWriteClient,
        *,
        owner: str | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        log: logging.Logger | None = None,
    ) -> None:
        self._cfg = cfg
        self._metrics = metrics
        self._client = client
        self._rng = rng or random.Random()
        self._clock = clock
        self._log = log or logging.getLogger("control_plane.forward")
        lease_s = cfg.timeout_s + cfg.retry_max_s + _LEASE_SLACK_S
        self.outbox = Outbox(pool, owner or default_owner(), lease_s)
        self._labels = SeriesLabels(pool, cfg.external_labels, cfg.series_cache)
        self._encoder = SampleEncoder()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._held: set[int] = set()  # ids of the rows the workers have claimed
        self._undeleted: list[int] = []  # acknowledged, not yet deleted (PostgreSQL was down)
        # Learnt from the rows claimed (an EMA); the first claim takes one row.
        self._samples_per_row = float(cfg.max_samples_per_request)
        self._db_ok = True

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._stop.clear()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._work(), name=f"forward-worker-{i}")
            for i in range(self._cfg.max_in_flight)
        ]
        self._tasks.append(loop.create_task(self._watch(), name="forward-watch"))

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=_STOP_GRACE_S)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
        held = list(self._held)
        self._held.clear()
        with contextlib.suppress(*_DB_ERRORS):
            if self._undeleted:
                await self._delete_acknowledged()
            if held:  # another replica may take them at once
                await self.outbox.release(held)

    # -- workers -------------------------------------------------------------------------------

    async def _work(self) -> None:
        while not self._stop.is_set():
            try:
                if self._undeleted:
                    await self._delete_acknowledged()
                rows = await self.outbox.claim(self._rows_per_claim())
                self._db_up()
            except _DB_ERRORS as exc:
                self._db_down(exc)
                await self._pause(self._cfg.poll_interval_s)
                continue
            if not rows:
                await self._idle()
                continue
            ids = [r.id for r in rows]
            self._held.update(ids)
            try:
                await self._forward(rows)
            except _Stopping:
                with contextlib.suppress(*_DB_ERRORS):  # another replica may go on at once
                    await self.outbox.release(ids)
            except _LeaseLost:
                self._log.warning("forward: the claim on %d outbox rows was lost", len(rows))
            except _DB_ERRORS as exc:
                self._db_down(exc)
                await self._pause(self._cfg.poll_interval_s)
            except Exception:  # pragma: no cover - a bug; the rows are retaken after the lease
                self._log.exception("forward: a worker failed on %d outbox rows", len(rows))
                await self._pause(self._cfg.poll_interval_s)
            # Not on cancellation (stop() past its grace): stop() releases what is held.
            self._held.difference_update(ids)

    async def _delete_acknowledged(self) -> None:
        ids = list(self._undeleted)
        await self.outbox.done(ids)
        gone = set(ids)
        self._undeleted = [i for i in self._undeleted if i not in gone]

    def _rows_per_claim(self) -> int:
        rows = self._cfg.max_samples_per_request / self._samples_per_row
        return max(1, min(_MAX_ROWS_PER_CLAIM, int(rows)))

    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
    # arrives as the event is set (docs/performance.md, alert wake-ups).
    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._cfg.poll_interval_s):
                await self._wake.wait()
        self._wake.clear()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    async def _forward(self, rows: list[Row]) -> None:
        total = sum(r.sample_count for r in rows)
        self._samples_per_row = 0.8 * self._samples_per_row + 0.2 * (total / len(rows))
        chunks = []
        for r in rows:
            try:
                chunks.append(payload.decode(r.payload))
            except payload.PayloadError as exc:  # pragma: no cover - written by encode() only
                self._log.error("forward: dropping outbox row %d: %s", r.id, exc)
                self._metrics.count(Outcome.REJECTED, r.sample_count)
        labels = await self._labels.encoded(
            itertools.chain.from_iterable(c.series_ids for c in chunks)
        )
        max_samples = self._cfg.max_samples_per_request
        encoded = 0
        for request in batching.requests(chunks, labels, max_samples, self._encoder):
            await self._deliver(request, rows)
            encoded += request.samples
        # What the encoder skipped: samples whose series row is gone (pruned) with no labels.
        unknown = sum(len(c.series_ids) for c in chunks) - encoded
        if unknown:
            self._log.warning("forward: %d samples of pruned series are not sent", unknown)
            self._metrics.count(Outcome.UNKNOWN_SERIES, unknown)
        ids = [r.id for r in rows]
        try:
            await self.outbox.done(ids)
        except _DB_ERRORS:
            self._undeleted.extend(ids)  # delivered: delete as soon as PostgreSQL is back
            raise

    async def _deliver(self, request: batching.Request, rows: list[Row]) -> None:
        """Send until acknowledged or refused for good; raises _LeaseLost or _Stopping."""
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                await self._client.send(request.body)
            except RejectedSendError as exc:
                self._log.warning(
                    "forward: %s refused %d samples (dropped): %s",
                    self._client.url,
                    request.samples,
                    exc,
                )
                self._metrics.count(Outcome.REJECTED, request.samples)
                return
            except RetryableSendError as exc:
                attempt += 1
                self._metrics.retries.labels(exc.reason.value).inc()
                delay = backoff_s(
                    attempt,
                    base_s=self._cfg.retry_base_s,
                    max_s=self._cfg.retry_max_s,
                    rng=self._rng,
                )
                if exc.retry_after_s is not None:
                    delay = min(max(delay, exc.retry_after_s), self._cfg.retry_max_s)
                if attempt == 1 or attempt % 10 == 0:
                    self._log.warning(
                        "forward: sending to %s failed (%s), attempt %d; retrying in %.1f s",
                        self._client.url,
                        exc,
                        attempt,
                        delay,
                    )
                await self._pause(delay)
                if self._stop.is_set():
                    raise _Stopping from exc
                if not await self.outbox.renew([r.id for r in rows]):
                    raise _LeaseLost from exc
                continue
            finally:
                self._metrics.request_duration.observe(time.perf_counter() - started)
            if attempt:
                self._log.info("forward: %s accepts samples again", self._client.url)
            self._metrics.count(Outcome.SENT, request.samples)
            return

    # -- gauges and the bound ------------------------------------------------------------------

    async def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                await self.refresh()
            except _DB_ERRORS as exc:
                self._db_down(exc)
            except Exception:  # pragma: no cover - a bug; keep the gauges going
                self._log.exception("forward: refreshing the outbox gauges failed")
            await self._pause(self._cfg.poll_interval_s)

    async def refresh(self) -> None:
        """Update the pending and lag gauges; trim the outbox past its bound."""
        stats = await self.outbox.stats()
        excess = stats.pending_samples - self._cfg.max_pending_samples
        pending = stats.pending_samples
        if excess > 0:
            dropped = await self.outbox.trim(excess)
            if dropped:
                self._log.warning(
                    "forward: the outbox passed %d samples; dropped the oldest %d",
                    self._cfg.max_pending_samples,
                    dropped,
                )
                self._metrics.count(Outcome.DROPPED, dropped)
                pending -= dropped
        self._metrics.pending.set(pending)
        self._metrics.lag.set(stats.lag_s)

    def _db_down(self, exc: BaseException) -> None:
        if self._db_ok:
            self._log.warning("forward: PostgreSQL unavailable (%r); retrying", exc)
        self._db_ok = False

    def _db_up(self) -> None:
        if not self._db_ok:
            self._log.info("forward: PostgreSQL is back")
        self._db_ok = True
