from __future__ import annotations

import random

from control_plane.alerting.payload import GroupAlert, build_notification, summary_line
from control_plane.alerting.retry import backoff_s, parse_retry_after
from control_plane.alerting.routing import (
    InhibitRule,
    Route,
    Silence,
    inhibited,
    route_for,
    silenced,
)
from control_plane.config import InhibitRuleConfig, RouteConfig
from control_plane.query.matchers import parse_matcher


def test_first_matching_route_wins_and_groups_by_labels() -> None:
    routes = [
        Route.from_config(0, RouteConfig(receiver="pager", matchers=['severity="critical"'])),
        Route.from_config(1, RouteConfig(receiver="chat", group_by=["alertname", "agent"])),
    ]
    crit = {"alertname": "Down", "severity": "critical", "agent": "a1"}
    warn = {"alertname": "Slow", "severity": "warning", "agent": "a1"}
    assert route_for(routes, crit) is routes[0]
    chat = route_for(routes, warn)
    assert chat is routes[1]
    key, labels = chat.group(warn)
    assert labels == {"alertname": "Slow", "agent": "a1"}
    assert key.startswith("1:chat:")
    assert chat.group({**warn, "path": "/x"})[0] == key  # other labels do not split groups
    assert chat.group({**warn, "agent": "a2"})[0] != key
    assert route_for(routes[:1], warn) is None


def test_silences_mute_within_their_span() -> None:
    s = Silence("s1", (parse_matcher('alertname=~"Slow|Down"'),), 100.0, 200.0)
    assert silenced([s], {"alertname": "Slow"}, 150.0)
    assert not silenced([s], {"alertname": "Slow"}, 200.0)
    assert not silenced([s], {"alertname": "Other"}, 150.0)


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff_s(n, base_s=1.0, max_s=10.0, rng=rng) for n in range(1, 8)]
    assert 0.5 <= delays[0] <= 1.0
    assert 4.0 <= delays[3] <= 8.0
    assert all(5.0 <= d <= 10.0 for d in delays[4:])


def test_retry_after_seconds_or_http_date() -> None:
    assert parse_retry_after("30", 0.0) == 30.0
    assert parse_retry_after(None, 0.0) == 1.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert parse_retry_after("soon", 0.0, default_s=5.0) == 5.0


def test_notification_is_alertmanager_shaped() -> None:
    alerts = [
        GroupAlert("f1", {"alertname": "X", "agent": "a1"}, {"s": "1"}, "firing", True, 0.0, None),
        GroupAlert("f2", {"alertname": "X", "agent": "a2"}, {"s": "1"}, "resolved", False, 0, 60),
    ]
    n = build_notification("0:ops:abc", "ops", {"alertname": "X"}, alerts)
    assert n["version"] == "4" and n["status"] == "firing"
    assert n["commonLabels"] == {"alertname": "X"}
    assert n["commonAnnotations"] == {"s": "1"}
    assert n["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert n["alerts"][1]["endsAt"] == "1970-01-01T00:01:00Z"
    assert summary_line(n) == "[FIRING:1] X (flapping: held firing)"


def test_inhibition_needs_a_matching_source_with_equal_labels() -> None:
    rule = InhibitRule.from_config(
        0,
        InhibitRuleConfig(
            source_matchers=['severity="critical"'],
            target_matchers=['severity="warning"'],
            equal=["agent"],
        ),
    )
    down = {"alertname": "Down", "severity": "critical", "agent": "a1"}
    slow_a1 = {"alertname": "Slow", "severity": "warning", "agent": "a1"}
    slow_a2 = {"alertname": "Slow", "severity": "warning", "agent": "a2"}
    assert inhibited([rule], slow_a1, [down, slow_a1])
    assert not inhibited([rule], slow_a2, [down, slow_a2])
    assert not inhibited([rule], down, [down])
    assert not inhibited([], slow_a1, [down])
