"""Prometheus remote write 1.0 in: ``POST /api/v1/write`` (docs/wire-format.md).

A sender is a virtual agent: it enrols once like an agent (``POST /api/v1/agents/enroll`` with
an ``agent_id`` such as ``prometheus-eu1``) and sends that agent token as its bearer token. So
its series are keyed, limited and listed like an agent's, its retries are deduplicated like an
agent's reports (the report id is a hash of the body), and it may write only as itself.

Answers, as Prometheus's queue manager reads them:

* 204: stored (or a retry of a batch already stored);
* 400: the batch can never be stored as it is (malformed, over a bound): Prometheus drops it;
* 415: not remote write 1.0 (a 2.0 sender falls back to 1.0 on it);
* 429 + ``Retry-After``: the hourly new-series limit; Prometheus 2.42 retries it only with
  ``queue_config.retry_on_http_429: true``, else drops the batch;
* 422: a permanent series limit, or data PostgreSQL refused: dropped, never retried (a retried
  429 for a limit that does not clear by itself would stall that shard's queue for good);
* 503 + ``Retry-After``: the store is down or overloaded: Prometheus retries with backoff.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from control_plane.appkeys import CONFIG, INGESTOR, METRICS
from control_plane.auth import TokenKind
from control_plane.auth.middleware import forbidden, require_principal
from control_plane.ingest.errors import IngestRejected, IngestUnavailable
from control_plane.ingest.limits import SeriesLimitExceeded
from control_plane.ingest.remote_write import RemoteWriteDecoder, Skipped
from haetae.web.bodies import read_body
from haetae.web.problem import ProblemError

_PROTOBUF = "application/x-protobuf"


class RemoteWriteMetrics:
    """Requests by outcome and samples not stored by reason (pre-initialised to 0)."""

    OUTCOMES = ("stored", "duplicate", "invalid", "limited", "rejected", "unavailable")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "haetae_remote_write_requests",
            "Prometheus remote-write requests received, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in self.OUTCOMES:
            self.requests.labels(outcome)
        self.skipped = Counter(
            "haetae_remote_write_samples_skipped",
            "Remote-written samples not stored, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in Skipped.__slots__:
            self.skipped.labels(reason)

    def count_skipped(self, skipped: Skipped) -> None:
        for reason in Skipped.__slots__:
            n = getattr(skipped, reason)
            if n:
                self.skipped.labels(reason).inc(n)


DECODER: web.AppKey[RemoteWriteDecoder] = web.AppKey("remote_write_decoder", RemoteWriteDecoder)
RW_METRICS: web.AppKey[RemoteWriteMetrics] = web.AppKey("remote_write_metrics", RemoteWriteMetrics)


def setup_routes(app: web.Application) -> None:
    cfg = app[CONFIG]
    app[DECODER] = RemoteWriteDecoder(
        cfg.ingest, max_inflated_bytes=cfg.http.max_decompressed_bytes
    )
    app[RW_METRICS] = RemoteWriteMetrics(app[METRICS].registry)
    app.router.add_post("/api/v1/write", post_write)


async def post_write(request: web.Request) -> web.Response:
    source = require_principal(request, TokenKind.AGENT).agent_id
    if source is None:  # pragma: no cover - an agent token always names its agent
        raise forbidden("this token names no agent")
    app = request.app
    metrics = app[RW_METRICS]
    _check_protocol(request)
    http = app[CONFIG].http
    body = await read_body(
        request,
        max_bytes=http.max_body_bytes,
        max_decompressed=http.max_decompressed_bytes,
        passthrough=("snappy",),
    )
    try:
        batch = app[DECODER].decode(body, source, now=time.time())
    except ProblemError:
        metrics.requests.labels("invalid").inc()
        raise
    ingestor = app[INGESTOR]
    metrics.count_skipped(batch.skipped)
    if not batch.report.samples:
        metrics.requests.labels("stored").inc()
        return web.Response(status=204)
    try:
        result = await ingestor.submit(batch.report)
    except SeriesLimitExceeded as exc:
        metrics.requests.labels("limited").inc()
        raise _rejected(exc) from None
    except IngestRejected as exc:
        metrics.requests.labels("rejected").inc()
        raise _rejected(exc) from None
    except IngestUnavailable as exc:
        metrics.requests.labels("unavailable").inc()
        raise ProblemError(
            503,
            "Service Unavailable",
            detail=f"the samples were not stored ({exc.reason}); send them again later",
            type_="ingest-unavailable",
            headers={"Retry-After": str(max(1, round(exc.retry_after_s)))},
        ) from exc
    metrics.requests.labels("duplicate" if result.duplicate else "stored").inc()
    if not result.duplicate:  # the late samples the flush dropped (a retry's were counted)
        metrics.count_skipped(batch.late())
    return web.Response(status=204)


def _rejected(exc: IngestRejected) -> ProblemError:
    """A limit or PostgreSQL refused the batch: its status says whether it can clear."""
    extra: dict[str, object] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, SeriesLimitExceeded):
        extra["limit"] = exc.limit.value
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return ProblemError(
        exc.status,
        exc.title,
        detail=exc.detail,
        type_=exc.type_,
        field="body.timeseries",
        headers=headers,
        extra=extra,
    )


def _check_protocol(request: web.Request) -> None:
    """Remote write 1.0 only: snappy-compressed ``prometheus.WriteRequest``."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding != "snappy":
        raise _unsupported(
            "header.Content-Encoding", f"Content-Encoding {encoding or 'identity'!r}", "snappy"
        )
    mime, _, params = request.headers.get("Content-Type", _PROTOBUF).partition(";")
    proto = params.strip().removeprefix("proto=") if params.strip() else "prometheus.WriteRequest"
    if mime.strip().lower() != _PROTOBUF or proto != "prometheus.WriteRequest":
        raise _unsupported(
            "header.Content-Type",
            f"Content-Type {request.headers.get('Content-Type', '')[:100]!r}",
            f"{_PROTOBUF} (remote write 1.0)",
        )
    version = request.headers.get("X-Prometheus-Remote-Write-Version", "0.1.0")
    if not version.startswith("0.1."):
        raise _unsupported(
            "header.X-Prometheus-Remote-Write-Version",
            f"remote write version {version[:32]!r}",
            "0.1.0",
        )


def _unsupported(field: str, what: str, expected: str) -> ProblemError:
    return ProblemError(
        415,
        "Unsupported Media Type",
        detail=f"{what} is not supported here; send {expected}",
        type_="unsupported-media-type",
        field=field,
    )
