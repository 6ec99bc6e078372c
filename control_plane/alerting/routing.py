"""Routes and silences: which receiver and group an alert goes to, and whether it is muted;
pure.

Routes are tried in order and the first whose matchers all match the alert's labels wins (a
route without matchers catches everything), as Alertmanager's routing tree with one level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from control_plane.config import InhibitRuleConfig, RouteConfig
from control_plane.query.matchers import Matcher, parse_matcher


@dataclass(frozen=True)
class Route:
    index: int
    receiver: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float
    escalation_policy: str | None = None

    @classmethod
    def from_config(cls, index: int, cfg: RouteConfig) -> Route:
        matchers = tuple(
            parse_matcher(m, where=f"alerting.notify.routes[{index}].matchers")
            for m in cfg.matchers
        )
        return cls(
            index,
            cfg.receiver,
            matchers,
            tuple(cfg.group_by),
            cfg.group_wait_s,
            cfg.group_interval_s,
            cfg.repeat_interval_s,
            cfg.escalation_policy,
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        return labels_match(self.matchers, labels)

    def group(self, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """The group key and the group's labels for an alert with ``labels``."""
        group_labels = {k: labels[k] for k in self.group_by if labels.get(k, "") != ""}
        digest = hashlib.sha256(orjson.dumps(sorted(group_labels.items()))).hexdigest()[:16]
        return f"{self.index}:{self.receiver}:{digest}", group_labels


def route_for(routes: Sequence[Route], labels: Mapping[str, str]) -> Route | None:
    return next((r for r in routes if r.matches(labels)), None)


def labels_match(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels.get(m.label, "")) for m in matchers)


@dataclass(frozen=True)
class Silence:
    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.starts_at <= now < self.ends_at and labels_match(self.matchers, labels)


def silenced(silences: Sequence[Silence], labels: Mapping[str, str], now: float) -> bool:
    return any(s.mutes(labels, now) for s in silences)


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_config(cls, index: int, cfg: InhibitRuleConfig) -> InhibitRule:
        where = f"alerting.notify.inhibit_rules[{index}]"
        return cls(
            tuple(parse_matcher(m, where=f"{where}.source_matchers") for m in cfg.source_matchers),
            tuple(parse_matcher(m, where=f"{where}.target_matchers") for m in cfg.target_matchers),
            tuple(cfg.equal),
        )


def inhibited(
    rules: Sequence[InhibitRule],
    labels: Mapping[str, str],
    firing: Sequence[Mapping[str, str]],
) -> bool:
    """Is an alert with ``labels`` muted by one of the ``firing`` alerts? An alert never
    inhibits itself (an alert matching both sides stays visible)."""
    for rule in rules:
        if not labels_match(rule.target, labels):
            continue
        for source in firing:
            if source == labels or not labels_match(rule.source, source):
                continue
            if all(source.get(k, "") == labels.get(k, "") for k in rule.equal):
                return True
    return False
