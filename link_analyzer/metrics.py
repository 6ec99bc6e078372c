"""The link analyzer's Prometheus metrics, registered in an injected registry.

Label values are closed sets, pre-initialised to 0 so that rates exist before the first event.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from link_analyzer.errors import (
    AnalysisBusy,
    AnalyzerError,
    FetchError,
    FetchRefused,
    FetchTimeout,
    SsrfRefused,
    TooManyRedirects,
    UpstreamStatus,
)
from link_analyzer.gemini import GeminiError
from link_analyzer.ledger import Usage
from link_analyzer.urls import UrlRefused


class Result(StrEnum):
    ANALYSED = "analysed"  # a model call was made
    CACHED = "cached"  # answered from cache (metadata and analysis, or metadata only)
    REUSED = "reused"  # fetched again, analysis reused by content hash
    SKIPPED = "skipped"  # low quality: never sent to the model
    DISABLED = "disabled"  # AI stage off
    FAILED = "failed"


FAILURE_REASONS = tuple(
    cls.code
    for cls in (
        AnalyzerError,
        FetchError,
        FetchTimeout,
        FetchRefused,
        SsrfRefused,
        TooManyRedirects,
        UpstreamStatus,
        UrlRefused,
        GeminiError,
        AnalysisBusy,
    )
)


FETCH_REASONS = tuple(
    cls.code
    for cls in (
        FetchError,
        FetchTimeout,
        FetchRefused,
        SsrfRefused,
        TooManyRedirects,
        UpstreamStatus,
    )
)


class LinkAnalyzerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.analyses = Counter(
            "haetae_link_analyses_total", "Link analyses by result.", ["result"], registry=r
        )
        self.failures = Counter(
            "haetae_link_analysis_failures_total",
            "Failed link analyses by reason.",
            ["reason"],
            registry=r,
        )
        self.duration = Histogram(
            "haetae_link_analysis_duration_seconds",
            "Time to answer one link analysis.",
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.gemini_tokens = Counter(
            "haetae_link_gemini_tokens_total", "Gemini tokens used.", ["kind"], registry=r
        )
        self.jobs = Counter(
            "haetae_link_jobs_total", "Queue jobs finished by outcome.", ["outcome"], registry=r
        )
        # -- the worker (``haetae worker`` serves these on its own /metrics) --------------------
        self.jobs_started = Counter(
            "haetae_link_jobs_started_total", "Queue jobs started (attempts).", registry=r
        )
        self.job_failures = Counter(
            "haetae_link_job_failures_total",
            "Failed job attempts by reason (each then retried or dead-lettered).",
            ["reason"],
            registry=r,
        )
        self.job_duration = Histogram(
            "haetae_link_job_duration_seconds",
            "Time one job attempt ran, by how it ended.",
            ["result"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
            registry=r,
        )
        self.queue_depth = Gauge(
            "haetae_link_queue_depth",
            "Jobs in the queue by state (sampled at scrape time).",
            ["state"],
            registry=r,
        )
        self.jobs_running = Gauge(
            "haetae_link_jobs_running", "Jobs running in this worker.", registry=r
        )
        self.batch_waiting = Gauge(
            "haetae_link_batch_waiting_jobs",
            "Jobs of this process waiting for a Gemini Batch API answer.",
            registry=r,
        )
        self.gemini_calls = Counter(
            "haetae_link_gemini_calls_total",
            "Gemini model calls by mode (online, batch) and result.",
            ["mode", "result"],
            registry=r,
        )
        self.gemini_cost = Counter(
            "haetae_link_gemini_cost_usd_total",
            "Gemini spend booked by this process (USD), by mode.",
            ["mode"],
            registry=r,
        )
        self.fetch_errors = Counter(
            "haetae_link_fetch_errors_total",
            "Failed fetches by kind (page, media) and reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.images_skipped = Counter(
            "haetae_link_images_skipped_total",
            "Images not sent to the model, by reason.",
            ["reason"],
            registry=r,
        )
        for result in Result:
            self.analyses.labels(result.value)
        for reason in FAILURE_REASONS:
            self.failures.labels(reason)
        for kind in ("prompt", "output"):
            self.gemini_tokens.labels(kind)
        for outcome in ("done", "retrying", "dead", "lease-lost"):
            self.jobs.labels(outcome)
        for reason in (*FAILURE_REASONS, "timeout", "internal"):
            self.job_failures.labels(reason)
        for ended in ("ok", "failed"):
            self.job_duration.labels(ended)
        for state in ("queued", "retrying", "active", "dead"):
            self.queue_depth.labels(state)
        for mode in ("online", "batch"):
            self.gemini_cost.labels(mode)
            for answered in ("ok", "error"):
                self.gemini_calls.labels(mode, answered)
        for kind in ("page", "media"):
            for reason in FETCH_REASONS:
                self.fetch_errors.labels(kind, reason)
        for reason in ("too-many-pixels", "unreadable"):
            self.images_skipped.labels(reason)

    def failed(self, exc: AnalyzerError) -> None:
        self.analyses.labels(Result.FAILED.value).inc()
        reason = exc.code if exc.code in FAILURE_REASONS else AnalyzerError.code
        self.failures.labels(reason).inc()
        if isinstance(exc, FetchError):
            self.fetch_failed(exc, kind="page")

    def fetch_failed(self, exc: FetchError, *, kind: str) -> None:
        reason = exc.code if exc.code in FETCH_REASONS else FetchError.code
        self.fetch_errors.labels(kind, reason).inc()

    def gemini_call(self, usage: Usage, cost_micros: int | None) -> None:
        """One answered model call: its tokens, and its cost when the ledger priced it."""
        mode = "batch" if usage.batch else "online"
        self.gemini_calls.labels(mode, "ok").inc()
        self.gemini_tokens.labels("prompt").inc(usage.prompt_tokens)
        self.gemini_tokens.labels("output").inc(usage.output_tokens)
        if cost_micros:
            self.gemini_cost.labels(mode).inc(cost_micros / 1_000_000)

    def gemini_failed(self, *, batch: bool) -> None:
        self.gemini_calls.labels("batch" if batch else "online", "error").inc()
