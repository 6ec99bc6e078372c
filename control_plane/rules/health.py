"""Each rule's evaluation health, as Prometheus's rules API shows it (``ok``, ``err``,
``unknown``, with the last error): one rule that cannot be evaluated is marked and counted,
and the others go on."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from control_plane.rules.metrics import AlertingMetrics

# An error message is kept and logged at most this long (an exception may carry the whole
# expression, or worse).
MAX_ERROR_CHARS = 500


class Health(StrEnum):
    UNKNOWN = "unknown"
    OK = "ok"
    ERR = "err"


@dataclass(frozen=True, slots=True)
class RuleHealth:
    health: Health = Health.UNKNOWN
    last_error: str | None = None
    last_evaluation: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "health": self.health.value,
            "last_error": self.last_error,
            "last_evaluation": self.last_evaluation,
        }


class RuleHealthBook:
    def __init__(self, metrics: AlertingMetrics, log: logging.Logger) -> None:
        self._metrics = metrics
        self._log = log
        self._by_rule: dict[str, RuleHealth] = {}

    def get(self, rule: str) -> RuleHealth:
        return self._by_rule.get(rule, RuleHealth())

    def ok(self, rule: str, now: float) -> None:
        seen = self._by_rule.get(rule)
        if seen is not None and seen.health is Health.ERR:
            if seen.last_evaluation == now:
                return  # failed in another shard in this same pass
            self._log.info("rule %s evaluates again", rule)
        self._by_rule[rule] = RuleHealth(Health.OK, None, now)

    def failed(self, rule: str, now: float, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        seen = self._by_rule.get(rule)
        self._metrics.evaluation_failures.labels(rule).inc()
        # Logged when it starts failing or the error changes, not on every pass.
        if seen is None or seen.last_error != error:
            self._log.warning("rule %s cannot be evaluated: %s", rule, error)
        self._by_rule[rule] = RuleHealth(Health.ERR, error, now)

    def keep_only(self, rules: Iterable[str]) -> None:
        """Forget rules that were deleted."""
        keep = set(rules)
        for name in [n for n in self._by_rule if n not in keep]:
            del self._by_rule[name]
            self._metrics.forget_rule(name)
