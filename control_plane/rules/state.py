"""The alert state machine: inactive -> pending -> firing -> resolved; pure.

One :class:`Alert` per rule and label set (its fingerprint). :func:`advance` takes a rule, its
current alerts and the latest evaluation result at ``now`` and returns the new alerts plus the
transitions to record and notify. Timers are measured from values stored in the alert (not from
the process), so state persisted and loaded after a restart continues where it stopped:
a firing alert stays firing without a new "firing" transition, and a pending one keeps its
``active_at``.

- ``for``: the condition must hold that long (pending) before the alert fires.
- ``keep_firing_for``: a firing alert whose condition cleared stays firing that long.
- flap control: a firing alert that would resolve after more than ``flap_max_flips`` flips
  (firing <-> resolved) within ``flap_window_s`` is held firing, marked ``flapping``, until the
  flips age out of the window.
- resolved alerts are kept ``RESOLVED_RETENTION_S`` (for the API and dedup), then dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

import orjson

from control_plane.rules.evaluator import NAME_LABEL, Vector
from control_plane.rules.model import Rule
from control_plane.rules.templates import render

RESOLVED_RETENTION_S = 900.0


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    rule: str
    fingerprint: str
    labels: Mapping[str, str]
    state: AlertState
    value: float
    active_at: float  # when the condition started holding (this activity)
    last_active_at: float  # last evaluation at which it held
    fired_at: float | None = None
    resolved_at: float | None = None
    flapping: bool = False
    flips: tuple[float, ...] = ()  # when it went firing <-> resolved, within the flap window
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    alert: Alert
    previous: AlertState
    at: float

    @property
    def current(self) -> AlertState:
        return self.alert.state


@dataclass(frozen=True)
class Advance:
    alerts: dict[str, Alert]  # fingerprint -> alert, inactive ones left out
    transitions: list[Transition]
    changed: list[Alert]  # alerts whose stored form changed (to persist)
    removed: list[str]  # fingerprints to forget


def alert_labels(rule: Rule, series: Mapping[str, str]) -> dict[str, str]:
    labels = {k: v for k, v in series.items() if k != NAME_LABEL}
    labels.update(rule.labels)
    labels["alertname"] = rule.name
    labels["severity"] = rule.severity.value
    return labels


def fingerprint(labels: Mapping[str, str]) -> str:
    raw = orjson.dumps(dict(sorted(labels.items())))
    return hashlib.sha256(raw).hexdigest()[:16]


def advance(
    rule: Rule,
    alerts: Mapping[str, Alert],
    result: Vector,
    now: float,
    *,
    may_clear: bool = True,
) -> Advance:
    """Apply one evaluation. With ``may_clear=False`` (data not trusted yet, e.g. just after a
    restart) alerts missing from ``result`` are left as they are instead of clearing."""
    active: dict[str, tuple[dict[str, str], float]] = {}
    for sample in result:
        labels = alert_labels(rule, sample.labels)
        active[fingerprint(labels)] = (labels, sample.value)
    out: dict[str, Alert] = {}
    transitions: list[Transition] = []
    changed: list[Alert] = []
    removed: list[str] = []

    for fp, (labels, value) in active.items():
        prev = alerts.get(fp)
        new = _activate(rule, prev, fp, labels, value, now)
        out[fp] = new
        changed.append(new)
        previous = prev.state if prev else AlertState.INACTIVE
        if previous is not new.state:
            transitions.append(Transition(new, previous, now))

    for fp, prev in alerts.items():
        if fp in active:
            continue
        if not may_clear:
            out[fp] = prev
            continue
        kept = _clear(rule, prev, now)
        if kept is None:
            removed.append(fp)
            if prev.state is AlertState.PENDING:
                gone = replace(prev, state=AlertState.INACTIVE)
                transitions.append(Transition(gone, prev.state, now))
            continue
        out[fp] = kept
        if kept != prev:
            changed.append(kept)
        if kept.state is not prev.state or kept.flapping != prev.flapping:
            transitions.append(Transition(kept, prev.state, now))
    return Advance(out, transitions, changed, removed)


def _activate(
    rule: Rule, prev: Alert | None, fp: str, labels: dict[str, str], value: float, now: float
) -> Alert:
    annotations = {k: render(t, labels, value) for k, t in rule.annotations.items()}
    if prev is None or prev.state is AlertState.RESOLVED:
        # A new activity; a resolved alert keeps its flip history.
        flips = prev.flips if prev else ()
        base = Alert(rule.name, fp, labels, AlertState.PENDING, value, now, now, flips=flips)
        if rule.for_s <= 0:
            return _fire(rule, base, now, annotations)
        return replace(base, annotations=annotations)
    current = replace(prev, labels=labels, value=value, last_active_at=now, annotations=annotations)
    if prev.state is AlertState.PENDING and now - prev.active_at >= rule.for_s:
        return _fire(rule, current, now, annotations)
    return current


def _fire(rule: Rule, alert: Alert, now: float, annotations: Mapping[str, str]) -> Alert:
    flips = (*_recent(alert.flips, now, rule.flap_window_s), now)
    return replace(
        alert,
        state=AlertState.FIRING,
        fired_at=now,
        resolved_at=None,
        flips=flips,
        annotations=annotations,
    )


def _clear(rule: Rule, prev: Alert, now: float) -> Alert | None:
    """The alert after an evaluation without it; None when it should be forgotten."""
    if prev.state is AlertState.PENDING:
        return None
    if prev.state is AlertState.RESOLVED:
        if prev.resolved_at is not None and now - prev.resolved_at >= RESOLVED_RETENTION_S:
            return None
        return prev
    # Firing.
    if now - prev.last_active_at < rule.keep_firing_for_s:
        return prev
    flips = _recent(prev.flips, now, rule.flap_window_s)
    if len(flips) + 1 > rule.flap_max_flips:
        return replace(prev, flapping=True, flips=flips)
    return replace(
        prev,
        state=AlertState.RESOLVED,
        resolved_at=now,
        flapping=False,
        flips=(*flips, now),
    )


def _recent(flips: tuple[float, ...], now: float, window: float) -> tuple[float, ...]:
    return tuple(t for t in flips if now - t < window)
