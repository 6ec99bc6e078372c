"""Timeline tests for the alert state machine: an injected clock, one evaluation per step."""

from __future__ import annotations

from control_plane.rules.evaluator import Sample
from control_plane.rules.model import Rule, rule_from_mapping
from control_plane.rules.state import RESOLVED_RETENTION_S, Advance, Alert, AlertState, advance

HIT = [Sample({"__name__": "m", "agent": "a1", "path": "/x"}, 7.0)]


def make_rule(**extra: object) -> Rule:
    spec: dict[str, object] = {
        "name": "HighValue",
        "expr": "m > 5",
        "labels": {"team": "web"},
        "annotations": {"summary": "{{ $labels.path }} at {{ $value }} on {{ $labels.agent }}"},
    }
    spec.update(extra)
    return rule_from_mapping(spec)


class Timeline:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.alerts: dict[str, Alert] = {}
        self.log: list[tuple[float, str, str]] = []

    def at(self, t: float, active: bool, *, may_clear: bool = True) -> Advance:
        step = advance(self.rule, self.alerts, HIT if active else [], t, may_clear=may_clear)
        self.alerts = step.alerts
        for tr in step.transitions:
            self.log.append((t, tr.previous.value, tr.current.value))
        return step

    @property
    def state(self) -> AlertState:
        if not self.alerts:
            return AlertState.INACTIVE
        (alert,) = self.alerts.values()
        return alert.state


def test_for_goes_pending_then_firing_then_resolved() -> None:
    tl = Timeline(make_rule(**{"for": "30s"}))
    tl.at(0, True)
    assert tl.state is AlertState.PENDING
    tl.at(20, True)
    assert tl.state is AlertState.PENDING
    tl.at(30, True)
    assert tl.state is AlertState.FIRING
    tl.at(40, False)
    assert tl.state is AlertState.RESOLVED
    assert tl.log == [
        (0, "inactive", "pending"),
        (30, "pending", "firing"),
        (40, "firing", "resolved"),
    ]
    (alert,) = tl.alerts.values()
    assert alert.labels == {
        "agent": "a1",
        "path": "/x",
        "team": "web",
        "alertname": "HighValue",
        "severity": "warning",
    }
    assert alert.annotations == {"summary": "/x at 7 on a1"}
    # Resolved alerts are forgotten after the retention.
    tl.at(40 + RESOLVED_RETENTION_S, False)
    assert tl.alerts == {}


def test_pending_that_clears_goes_inactive_without_firing() -> None:
    tl = Timeline(make_rule(**{"for": "1m"}))
    tl.at(0, True)
    tl.at(30, False)
    assert tl.alerts == {}
    assert tl.log == [(0, "inactive", "pending"), (30, "pending", "inactive")]


def test_keep_firing_for_holds_after_the_condition_clears() -> None:
    tl = Timeline(make_rule(keep_firing_for="1m"))
    tl.at(0, True)
    assert tl.state is AlertState.FIRING
    tl.at(10, False)
    tl.at(50, False)
    assert tl.state is AlertState.FIRING
    tl.at(55, True)  # back before the hold ended: the hold restarts from here
    tl.at(100, False)
    assert tl.state is AlertState.FIRING
    tl.at(115, False)
    assert tl.state is AlertState.RESOLVED
    assert [e[2] for e in tl.log] == ["firing", "resolved"]


def test_flapping_is_held_firing_until_flips_age_out() -> None:
    tl = Timeline(make_rule(flap={"max_flips": 3, "window": "10m"}))
    tl.at(0, True)
    tl.at(30, False)
    tl.at(60, True)
    assert tl.state is AlertState.FIRING
    # fire, resolve, fire: resolving now would be a 4th flip within 10 minutes.
    tl.at(90, False)
    assert tl.state is AlertState.FIRING
    (alert,) = tl.alerts.values()
    assert alert.flapping
    assert tl.log[-1] == (90, "firing", "firing")  # being held is a transition too
    tl.at(120, True)
    tl.at(150, False)
    assert tl.state is AlertState.FIRING
    # Once the first flip left the window it may resolve.
    tl.at(600, False)
    assert tl.state is AlertState.RESOLVED
    (alert,) = tl.alerts.values()
    assert not alert.flapping
    assert [e[2] for e in tl.log] == ["firing", "resolved", "firing", "firing", "resolved"]


def test_restart_with_persisted_state_neither_refires_nor_forgets() -> None:
    rule = make_rule(**{"for": "30s"})
    tl = Timeline(rule)
    tl.at(0, True)
    tl.at(30, True)
    stored = dict(tl.alerts)  # what Postgres holds
    # A new process: same alerts loaded, data not trusted yet, the series has no points.
    again = Timeline(rule)
    again.alerts = stored
    step = again.at(31, False, may_clear=False)
    assert step.transitions == [] and again.state is AlertState.FIRING
    step = again.at(32, True)
    assert step.transitions == []
    # A pending alert keeps its start: it fires 30 s after the first activation.
    tl2 = Timeline(rule)
    tl2.at(0, True)
    restored = Timeline(rule)
    restored.alerts = dict(tl2.alerts)
    restored.at(29, True)
    assert restored.state is AlertState.PENDING
    restored.at(30, True)
    assert restored.state is AlertState.FIRING
