"""Deliver reports to the control plane: spool first, then drain the spool oldest-first.

Every report is written to the on-disk spool before any attempt to send it, and leaves the spool
only once the control plane has answered 2xx (stored) or a permanent 4xx (it never will be), so
an outage or a restart loses nothing; replays carry the same ``Idempotency-Key``, so nothing is
stored twice either. See docs/wire-format.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from agent.backoff import Backoff
from agent.config import AgentConfig
from agent.errors import (
    ControlPlaneUnavailable,
    EnrolmentError,
    RecordTooLarge,
    SpoolError,
)
from agent.report import encode_report
from agent.runner import Cycle
from agent.spool import Spool, SpoolRecord
from agent.state import SeqAllocator, TokenStore

# Spool record: a version byte, the report id (16 bytes), its seq, then the gzip body as sent.
_ENVELOPE = struct.Struct(">B16sQ")
_ENVELOPE_V1 = 1
_PEEK_BATCH = 16
_MAX_RETRY_AFTER_S = 300.0
_MAX_DETAIL = 300
_MAX_ANSWER = 256 * 1024  # answers are small JSON documents; never buffer a runaway body


class FailureReason(enum.StrEnum):
    """Why an attempt to deliver failed and will be retried (a metric label)."""

    CONNECTION = "connection_error"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    THROTTLED = "throttled"  # 408 or 429
    UNAUTHORIZED = "unauthorized"
    NOT_ENROLLED = "not_enrolled"


class DropReason(enum.StrEnum):
    """Why a report was given up for good (a metric label)."""

    REJECTED = "rejected"  # a 4xx: the control plane will never accept it
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


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    retry_after_s: float | None


class Reporter:
    def __init__(
        self,
        config: AgentConfig,
        *,
        session: aiohttp.ClientSession,
        spool: Spool,
        registry: CollectorRegistry,
        tokens: TokenStore,
        seq: SeqAllocator,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        link = config.control_plane
        base = link.url.rstrip("/")
        self._reports_url = f"{base}/api/v1/agents/{config.agent_id}/reports"
        self._enrol_url = f"{base}/api/v1/agents/enroll"
        secret = link.enrolment_token
        self._enrolment_token = secret.get_secret_value() if secret is not None else None
        self._enrol_body = orjson.dumps(
            {"agent_id": config.agent_id, "hostname": socket.gethostname(), "labels": config.labels}
        )
        self._timeout = aiohttp.ClientTimeout(total=link.request_timeout_s)
        self._session = session
        self._spool = spool
        self._tokens = tokens
        self._seq = seq
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._log = logger or logging.getLogger("haetae.agent.reporter")
        self._token: str | None = None
        self._wake = asyncio.Event()
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
        self._enrolments = Counter(
            "haetae_agent_enrolments", "Successful enrolments.", registry=registry
        )
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
            await asyncio.to_thread(self._spool.append, record)
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
        report_id, _, body = envelope
        answer = await self._post_report(await self._ensure_token(), report_id, body)
        if answer.status == 401 and self._enrolment_token is not None:
            # Our token was revoked (or the control plane lost it): enrol again, retry once.
            self._log.warning("the control plane refused the agent token; enrolling again")
            self._token = None
            await asyncio.to_thread(self._tokens.clear)
            answer = await self._post_report(await self._ensure_token(), report_id, body)
        status = answer.status
        if 200 <= status < 300:
            self._note_success()
            return
        if status == 401:
            raise ControlPlaneUnavailable(
                "the control plane refused the agent token (HTTP 401)",
                reason=FailureReason.UNAUTHORIZED,
            )
        if status in (408, 429):
            raise ControlPlaneUnavailable(
                f"the control plane asked to retry later (HTTP {status})",
                reason=FailureReason.THROTTLED,
                retry_after_s=answer.retry_after_s,
            )
        if 400 <= status < 500:
            self._dropped.labels(DropReason.REJECTED.value).inc()
            self._log.warning(
                "report %s rejected with HTTP %d, dropped: %s", report_id, status, _detail(answer)
            )
            return
        # 5xx (a 503 may say when to come back: ingest overloaded, database down).
        raise ControlPlaneUnavailable(
            f"the control plane answered HTTP {status}",
            reason=FailureReason.SERVER_ERROR,
            retry_after_s=answer.retry_after_s,
        )

    async def _post_report(self, token: str, report_id: str, body: bytes) -> _Answer:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Idempotency-Key": report_id,
        }
        return await self._post(self._reports_url, body, headers)

    async def _ensure_token(self) -> str:
        if self._token is None:
            self._token = await asyncio.to_thread(self._tokens.load)
        if self._token is None:
            self._token = await self._enrol()
        return self._token

    async def _enrol(self) -> str:
        if self._enrolment_token is None:
            raise EnrolmentError(
                f"no agent token for {self._tokens.agent_id!r} in {self._tokens.path} "
                "and no control_plane.enrolment_token to enrol with"
            )
        headers = {
            "Authorization": f"Bearer {self._enrolment_token}",
            "Content-Type": "application/json",
        }
        answer = await self._post(self._enrol_url, self._enrol_body, headers)
        status = answer.status
        if status in (200, 201):
            token = _token_from(answer.body)
            if token is None:
                raise ControlPlaneUnavailable(
                    "enrolment answer has no token", reason=FailureReason.SERVER_ERROR
                )
            await asyncio.to_thread(self._tokens.save, token)
            self._enrolments.inc()
            self._log.info("enrolled with the control plane")
            return token
        if status in (408, 429) or status >= 500:
            raise ControlPlaneUnavailable(
                f"enrolment answered HTTP {status}",
                reason=FailureReason.SERVER_ERROR if status >= 500 else FailureReason.THROTTLED,
                retry_after_s=answer.retry_after_s,
            )
        raise EnrolmentError(f"enrolment refused with HTTP {status}: {_detail(answer)}")

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> _Answer:
        """POST and read the answer; transport failures become ``ControlPlaneUnavailable``."""
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                data = await _read_capped(resp, _MAX_ANSWER)
                return _Answer(resp.status, data, _retry_after(resp.headers.get("Retry-After")))
        except TimeoutError as exc:
            raise ControlPlaneUnavailable(
                f"no answer from {url} within {self._timeout.total:g} s",
                reason=FailureReason.TIMEOUT,
            ) from exc
        except aiohttp.ClientError as exc:
            raise ControlPlaneUnavailable(
                f"cannot reach {url}: {exc}", reason=FailureReason.CONNECTION
            ) from exc

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


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    body = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            break  # only a prefix is needed to log what went wrong
    return bytes(body[:limit])


def _token_from(body: bytes) -> str | None:
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    token = doc.get("token") if isinstance(doc, dict) else None
    return token if isinstance(token, str) and token else None


def _retry_after(value: str | None) -> float | None:
    # Only the delay-seconds form; an HTTP-date falls back to our own backoff.
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def _detail(answer: _Answer) -> str:
    """The problem+json title/detail of an answer, else its start, for a log line."""
    try:
        doc = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return answer.body[:_MAX_DETAIL].decode("utf-8", "replace")
    if isinstance(doc, dict):
        parts = [str(doc[k]) for k in ("title", "detail") if doc.get(k)]
        if parts:
            return ": ".join(parts)[:_MAX_DETAIL]
    return str(doc)[:_MAX_DETAIL]
