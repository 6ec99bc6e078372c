"""Expose a spool's state as Prometheus metrics, read when scraped (no bookkeeping in the spool)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.spool import Spool


class SpoolMetrics(Collector):
    def __init__(self, spool: Spool) -> None:
        self._spool = spool

    def collect(self) -> Iterator[Metric]:
        s = self._spool
        yield GaugeMetricFamily(
            "haetae_agent_spool_pending_reports",
            "Reports spooled on disk and not yet acknowledged by the control plane.",
            value=s.pending_count,
        )
        yield GaugeMetricFamily(
            "haetae_agent_spool_pending_bytes",
            "Bytes of the reports not yet acknowledged.",
            value=s.pending_bytes,
        )
        yield GaugeMetricFamily(
            "haetae_agent_spool_disk_bytes", "Bytes of all spool segment files.", value=s.disk_bytes
        )
        yield GaugeMetricFamily(
            "haetae_agent_spool_max_bytes", "The spool's size bound.", value=s.max_bytes
        )
        yield CounterMetricFamily(
            "haetae_agent_spool_dropped_reports",
            "Unsent reports dropped because the spool was full (oldest first) or damaged.",
            value=s.dropped_total,
        )
