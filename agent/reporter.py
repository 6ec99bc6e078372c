"""Deliver reports to the control plane: spool first, then drain the spool oldest-first.

Every report is written to the on-disk spool before any attempt to send it, and leaves the spool
only once the control plane has answered 2xx (stored) or a poison 4xx (it never will be), so
an outage or a restart loses nothing; replays carry the same ``Idempotency-Key``, so nothing is
stored twice either. See docs/wire-format.md.

Which 4xx are poison: those about the report itself (400 invalid, 413 too large, 415, 422 data
PostgreSQL refused or a series limit, and any other 4xx not listed next). A poison report goes
to the dead-letter file (``dead_letter.py``) with the reason, is counted, and the spool moves on:
one bad report never blocks the ones behind it. Not poison, so kept and retried: 401 (the token:
enrol again), 403/404/405 (the agent's id or URL is wrong: every report would fail the same),
408/409/425/429 (come back later).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from agent.backoff import Backoff
from agent.client import Answer, ControlPlaneClient, FailureReason
from agent.dead_letter import DeadLetterReason, DeadLetters
from agent.errors import (
    ControlPlaneUnavailable,
    EnrolmentError,
    RecordTooLarge,
    SpoolError,
)
from agent.report import encode_report
from agent.runner import Cycle
from agent.spool import Spool, SpoolRecord
from agent.state import SeqAllocator
from agent.worker import Worker

# Spool record: a version byte, the report id (16 bytes), its seq, then the gzip body as sent.
_ENVELOPE = struct.Struct(">B16sQ")
_ENVELOPE_V1 = 1
_PEEK_BATCH = 16
_MAX_RETRY_AFTER_S = 300.0
# Answers that say nothing against the report itself (see the module docstring).
_MISCONFIGURED = frozenset({403, 404, 405})
_RETRY_LATER = frozenset({408, 409, 425, 429})


class DropReason(enum.StrEnum):
    """Why a report was given up for good (a metric label)."""

    REJECTED = "rejected"  # a poison 4xx: the control plane will never accept it
    TOO_LARGE = "too_large"  # larger than the whole spool
    SPOOL_ERROR = "spool_error"  # could not be written to disk
    MALFORMED = "malformed"  # a spool record this version cannot read


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """The reporter's view of the control-plane link, for /health."""

    last_success_at: float | None
    last_error: str | None
    consecutive_failures: int
    spool_error: str | None


class Reporter:
    """Spools each report (``submit``) and delivers the spool in order in the background
    (``start``/``close``): 2xx acknowledges, a poison 4xx dead-letters the report (counted)
    and goes on, anything else stops the drain until a jittered backoff has passed."""

    def __init__(
        self,
        *,
        client: ControlPlaneClient,
        spool: Spool,
        seq: SeqAllocator,
        registry: CollectorRegistry,
        dead_letters: DeadLetters | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self._client = client
        self._spool = spool
        self._seq = seq
        self._dead_letters = dead_letters
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._log = logger or logging.getLogger("haetae.agent.reporter")
        self._wake = asyncio.Event()
        self._writer = Worker("haetae-spool-writer")
        self._closing = asyncio.Event()
        self._drain_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_success_at: float | None = None
        self._last_error: str | None = None
        self._failures = 0
        self._spool_error: str | None = None
        self._retry_after: float | None = None

        self._sent = Counter(
            "haetae_agent_reports_sent",
            "Reports the control plane acknowledged (2xx).",
            registry=registry,
        )
        self._failed = Counter(
            "haetae_agent_reports_failed",
            "Delivery attempts that failed and will be retried.",
            ["reason"],
            registry=registry,
        )
        self._dropped = Counter(
            "haetae_agent_reports_dropped",
            "Reports given up for good.",
            ["reason"],
            registry=registry,
        )
        self._dead_lettered = Counter(
            "haetae_agent_reports_dead_lettered",
            "Reports refused for good (a poison 4xx), moved to the dead-letter file.",
            ["reason"],
            registry=registry,
        )
        for dl in DeadLetterReason:
            self._dead_lettered.labels(dl.value)
        self._last_success = Gauge(
            "haetae_agent_last_report_success_timestamp_seconds",
            "When the control plane last acknowledged a report (unix seconds).",
            registry=registry,
        )
        for r in FailureReason:
            self._failed.labels(r.value)
        for d in DropReason:
            self._dropped.labels(d.value)

    # -- public API --------------------------------------------------------------------------

    async def submit(self, cycle: Cycle) -> str:
        """Encode ``cycle`` as a report, spool it durably and wake the sender; the report id."""
        report_id = uuid.uuid4()
        seq = self._seq.next()
        body = encode_report(report_id=str(report_id), seq=seq, cycle=cycle)
        record = _ENVELOPE.pack(_ENVELOPE_V1, report_id.bytes, seq) + body
        try:
            await self._writer.run(self._spool.append, record)  # fdatasync, off the loop
        except RecordTooLarge as exc:
            self._dropped.labels(DropReason.TOO_LARGE.value).inc()
            self._log.error("report %s dropped: %s", report_id, exc)
        except SpoolError as exc:
            self._dropped.labels(DropReason.SPOOL_ERROR.value).inc()
            if self._spool_error is None:
                self._log.error("report %s dropped: %s", report_id, exc)
            self._spool_error = str(exc)
        else:
            self._spool_error = None
        self._wake.set()
        return str(report_id)

    def start(self) -> None:
        """Start sending in the background: whenever woken, and after a failure, once the
        backoff has passed (collection goes on meanwhile; reports wait in the spool)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="haetae-agent-reporter")

    async def close(self, timeout_s: float) -> bool:
        """Stop sending, within ``timeout_s``: a drain in progress may finish (so a report on
        the wire is acknowledged, not resent), then one last attempt is made. True if nothing
        is left in the spool; whatever is left is sent after the next start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._closing.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                async with asyncio.timeout_at(deadline):
                    await task
            except TimeoutError:
                pass  # the task was cancelled: an unacknowledged report is resent later
        return await self.flush(max(0.0, deadline - loop.time()))

    async def _run(self) -> None:
        self._wake.set()  # reports left from a previous run are sent at once
        while not self._closing.is_set():
            await self._wake.wait()
            self._wake.clear()
            if self._closing.is_set() or await self.drain():
                continue
            delay = self._backoff.next_delay()
            if self._retry_after is not None:
                delay = max(delay, min(self._retry_after, _MAX_RETRY_AFTER_S))
            self._log.debug("retrying the control plane in %.1f s", delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._closing.wait()
            self._wake.set()

    async def drain(self) -> bool:
        """Send spooled reports oldest-first, as fast as the control plane answers; True when
        the spool is empty, False when a transient failure stopped the drain."""
        async with self._drain_lock:
            try:
                # Reads (from the page cache, usually) and acks (no fsync) are cheap enough to
                # run on the loop; only appends, which fsync, go to a thread.
                while records := self._spool.peek(_PEEK_BATCH):
                    for record in records:
                        await self._deliver(record)
                        self._spool.ack(record)
                return True
            except (ControlPlaneUnavailable, EnrolmentError) as exc:
                self._note_failure(exc)
            except SpoolError as exc:
                # A failed ack means a resend later, which the idempotency key makes harmless.
                if self._spool_error is None:
                    self._log.error("spool: %s", exc)
                self._spool_error = str(exc)
            return False

    async def flush(self, timeout_s: float) -> bool:
        """One drain, bounded by ``timeout_s``; True if everything was delivered."""
        if self._spool.pending_count == 0:
            return True
        if timeout_s <= 0:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                return await self.drain()
        except TimeoutError:
            return False

    def status(self) -> LinkStatus:
        return LinkStatus(
            self._last_success_at, self._last_error, self._failures, self._spool_error
        )

    # -- delivery ----------------------------------------------------------------------------

    async def _deliver(self, record: SpoolRecord) -> None:
        """Returns once the record may be acknowledged (stored, or refused for good)."""
        envelope = _unwrap(record.payload)
        if envelope is None:
            self._dropped.labels(DropReason.MALFORMED.value).inc()
            self._log.error("dropping an unreadable spool record at %d", record.offset)
            return
        report_id, seq, body = envelope
        answer = await self._client.post_report(report_id, body)
        status = answer.status
        if 200 <= status < 300:
            self._note_success()
            return
        if status == 401:
            raise ControlPlaneUnavailable(
                "the control plane refused the agent token (HTTP 401)",
                reason=FailureReason.UNAUTHORIZED,
            )
        if status in _MISCONFIGURED:
            raise ControlPlaneUnavailable(
                f"the control plane refused the agent (HTTP {status}: {answer.detail()}); "
                "check control_plane.url and agent_id",
                reason=FailureReason.MISCONFIGURED,
            )
        if status in _RETRY_LATER:
            raise ControlPlaneUnavailable(
                f"the control plane asked to retry later (HTTP {status}: {answer.detail()})",
                reason=FailureReason.THROTTLED,
                retry_after_s=answer.retry_after_s,
            )
        if 400 <= status < 500:
            await self._dead_letter(report_id, seq, body, answer)
            return
        # 5xx (a 503 may say when to come back: ingest overloaded, database down).
        raise ControlPlaneUnavailable(
            f"the control plane answered HTTP {status}",
            reason=FailureReason.SERVER_ERROR,
            retry_after_s=answer.retry_after_s,
        )

    async def _dead_letter(self, report_id: str, seq: int, body: bytes, answer: Answer) -> None:
        reason = DeadLetterReason.of(answer.status)
        detail = answer.detail()
        self._dead_lettered.labels(reason.value).inc()
        self._dropped.labels(DropReason.REJECTED.value).inc()
        self._log.warning(
            "report %s (seq %d) refused with HTTP %d, moved to the dead-letter file: %s",
            report_id,
            seq,
            answer.status,
            detail,
        )
        if self._dead_letters is None:
            return
        try:
            add = functools.partial(
                self._dead_letters.add,
                report_id=report_id,
                seq=seq,
                status=answer.status,
                reason=reason,
                detail=detail,
                body=body,
            )
            await self._writer.run(add)  # fsync, off the loop
        except OSError as exc:  # the spool must move on even when the disk refuses the copy
            self._log.error("could not write the dead-letter file: %s", exc)

    # -- bookkeeping -------------------------------------------------------------------------

    def _note_success(self) -> None:
        now = self._clock()
        self._sent.inc()
        self._last_success.set(now)
        self._last_success_at = now
        if self._failures:
            self._log.info("control plane reachable again after %d failures", self._failures)
        self._failures = 0
        self._last_error = None
        self._retry_after = None
        self._backoff.reset()

    def _note_failure(self, exc: ControlPlaneUnavailable | EnrolmentError) -> None:
        if isinstance(exc, ControlPlaneUnavailable):
            reason, self._retry_after = exc.reason, exc.retry_after_s
        else:
            reason, self._retry_after = FailureReason.NOT_ENROLLED, None
        self._failed.labels(reason).inc()
        if str(exc) != self._last_error:  # log changes, not every retry of the same failure
            self._log.warning("cannot deliver reports (will retry): %s", exc)
        self._failures += 1
        self._last_error = str(exc)


def last_spooled_seq(spool: Spool) -> int:
    """The seq of the newest report in ``spool`` (0 if none): where numbering resumes."""
    record = spool.newest()
    envelope = _unwrap(record.payload) if record is not None else None
    return envelope[1] if envelope is not None else 0


def _unwrap(payload: bytes) -> tuple[str, int, bytes] | None:
    """(report id, seq, body) of a spool record, or None if this version cannot read it."""
    if len(payload) <= _ENVELOPE.size or payload[0] != _ENVELOPE_V1:
        return None
    _, rid, seq = _ENVELOPE.unpack_from(payload)
    return str(uuid.UUID(bytes=rid)), seq, payload[_ENVELOPE.size :]
