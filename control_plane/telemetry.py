"""The control plane's own Prometheus metrics, in an injected registry (never the global one)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ControlPlaneMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_request_duration = Histogram(
            "haetae_http_request_duration_seconds",
            "HTTP request latency by route template, method and status code.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ingest_reports = Counter(
            "haetae_ingest_reports_total",
            "Agent reports received, by outcome (stored, duplicate, rejected, failed).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("stored", "duplicate", "rejected", "failed"):
            self.ingest_reports.labels(outcome)
        self.ingest_samples = Counter(
            "haetae_ingest_samples_total", "Samples durably stored.", registry=r
        )
        self.ingest_samples_expired = Counter(
            "haetae_ingest_samples_expired_total",
            "Samples older than the retention period, accepted but not stored.",
            registry=r,
        )
        self.ingest_flush_duration = Histogram(
            "haetae_ingest_flush_duration_seconds",
            "Duration of one group-commit flush (COPY transaction).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ingest_pending_samples = Gauge(
            "haetae_ingest_pending_samples", "Samples waiting for the next flush.", registry=r
        )
        self.window_series = Gauge(
            "haetae_window_series", "Series held in the in-memory evaluation windows.", registry=r
        )
        self.health_check_duration = Gauge(
            "haetae_dependency_check_duration_seconds",
            "Latency of the last dependency health check.",
            ["dependency"],
            registry=r,
        )
        self.health_check_up = Gauge(
            "haetae_dependency_up",
            "1 when the last dependency check passed.",
            ["dependency"],
            registry=r,
        )

    def watch_pool(self, pool: asyncpg.Pool) -> None:
        self.registry.register(_PoolCollector(pool))


class _PoolCollector(Collector):
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    def collect(self) -> Iterable[Metric]:
        size = GaugeMetricFamily(
            "haetae_db_pool_connections", "PostgreSQL pool connections by state.", labels=["state"]
        )
        total = self._pool.get_size()
        idle = self._pool.get_idle_size()
        size.add_metric(["idle"], idle)
        size.add_metric(["busy"], total - idle)
        yield size
        yield GaugeMetricFamily(
            "haetae_db_pool_max_connections", "Pool size limit.", value=self._pool.get_max_size()
        )


def metrics_middleware(
    metrics: ControlPlaneMetrics,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            # Route templates, not raw paths, keep label cardinality bounded.
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            metrics.http_request_duration.labels(route, request.method, str(status)).observe(
                time.perf_counter() - start
            )

    return middleware
