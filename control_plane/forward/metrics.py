"""The forwarder's Prometheus metrics, registered on the control plane's registry."""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from control_plane.forward.errors import RetryReason


class Outcome(StrEnum):
    """What became of a sample (label of ``haetae_forward_samples_total``)."""

    SENT = "sent"  # acknowledged by the store
    REJECTED = "rejected"  # the store answered a 4xx other than 429 (poison batch)
    DROPPED = "dropped"  # the outbox passed forward.max_pending_samples: oldest dropped
    UNKNOWN_SERIES = "unknown_series"  # its series row was pruned before it could be sent


class ForwardMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.samples = Counter(
            "haetae_forward_samples",
            "Samples leaving the remote-write outbox, by outcome.",
            ["outcome"],
            registry=r,
        )
        for outcome in Outcome:
            self.samples.labels(outcome.value)
        self.retries = Counter(
            "haetae_forward_retries",
            "Remote-write requests sent again after a failure, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in RetryReason:
            self.retries.labels(reason.value)
        self.lag = Gauge(
            "haetae_forward_lag_seconds",
            "Age of the oldest commit still in the outbox (0 when it is empty).",
            registry=r,
        )
        self.pending = Gauge(
            "haetae_forward_pending_samples",
            "Samples in the outbox, not yet acknowledged by the store (all replicas).",
            registry=r,
        )
        self.request_duration = Histogram(
            "haetae_forward_request_duration_seconds",
            "Remote-write requests, from send to answer.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )

    def count(self, outcome: Outcome, n: int) -> None:
        if n:
            self.samples.labels(outcome.value).inc(n)
