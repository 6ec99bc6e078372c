"""The link analyzer's Prometheus metrics, registered in an injected registry.

Label values are closed sets, pre-initialised to 0 so that rates exist before the first event.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram

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
        for result in Result:
            self.analyses.labels(result.value)
        for reason in FAILURE_REASONS:
            self.failures.labels(reason)
        for kind in ("prompt", "output"):
            self.gemini_tokens.labels(kind)
        for outcome in ("done", "retrying", "dead", "lease-lost"):
            self.jobs.labels(outcome)

    def failed(self, exc: AnalyzerError) -> None:
        self.analyses.labels(Result.FAILED.value).inc()
        reason = exc.code if exc.code in FAILURE_REASONS else AnalyzerError.code
        self.failures.labels(reason).inc()
