"""Metrics of the rule engine and the notification pipeline, in an injected registry."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from control_plane.alerting.sender import Outcome
from control_plane.rules.state import AlertState


class AlertingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.evaluation_duration = Histogram(
            "haetae_rule_evaluation_duration_seconds",
            "Time of one evaluation pass over every rule of the held shards.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.evaluation_failures = Counter(
            "haetae_rule_evaluation_failures_total",
            "Rule evaluations that failed (e.g. duplicate label sets); the other rules go on.",
            ["rule"],
            registry=r,
        )
        self.alerts = Gauge(
            "haetae_alerts",
            "Alerts of the shards this process evaluates, by state.",
            ["state"],
            registry=r,
        )
        self.shards_held = Gauge(
            "haetae_rule_shards_held", "Evaluation shards this process holds.", registry=r
        )
        self.notifications = Counter(
            "haetae_notifications_total",
            "Notification send attempts by outcome.",
            ["outcome"],
            registry=r,
        )
        for state in (AlertState.PENDING, AlertState.FIRING):
            self.alerts.labels(state.value).set(0)
        for outcome in Outcome:
            self.notifications.labels(outcome.value)

    def forget_rule(self, rule: str) -> None:
        """Drop a deleted rule's series."""
        with contextlib.suppress(KeyError):  # KeyError: it never failed
            self.evaluation_failures.remove(rule)
