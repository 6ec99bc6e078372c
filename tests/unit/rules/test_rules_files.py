from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from control_plane.rules.errors import ExprError, RuleError
from control_plane.rules.files import export_prometheus, load_rules_dir, load_rules_text
from control_plane.rules.model import RuleSource, Severity, rule_from_mapping, threshold_rule

REPO_RULES = Path(__file__).resolve().parents[3] / "rules"

GOOD = """
groups:
  - name: web
    rules:
      - alert: HighErrorRate
        expr: sum by (agent) (rate(errors_total[5m])) > 1
        for: 2m
        keep_firing_for: 1m
        labels: {severity: critical, team: web}
        annotations:
          summary: "errors at {{ $value | humanize }} on {{ $labels.agent }}"
"""


def test_loads_prometheus_style_file() -> None:
    (rule,) = load_rules_text(GOOD, source="web.yml")
    assert rule.name == "HighErrorRate"
    assert rule.for_s == 120 and rule.keep_firing_for_s == 60
    assert rule.severity is Severity.CRITICAL
    assert rule.labels == {"team": "web"}
    assert rule.source is RuleSource.FILE
    assert rule.metric_names == {"errors_total"}


def test_export_round_trips_as_a_prometheus_rule_file() -> None:
    rules = load_rules_text(GOOD)
    doc = yaml.safe_load(export_prometheus(rules))
    (entry,) = doc["groups"][0]["rules"]
    assert entry == {
        "alert": "HighErrorRate",
        "expr": "sum by (agent) (rate(errors_total[5m])) > 1",
        "for": "2m",
        "keep_firing_for": "1m",
        "labels": {"team": "web", "severity": "critical"},
        "annotations": {"summary": "errors at {{ $value | humanize }} on {{ $labels.agent }}"},
    }
    assert load_rules_text(export_prometheus(rules)) == rules


def test_bad_expression_in_a_file_names_file_and_position() -> None:
    text = GOOD.replace("[5m]", "[5m")
    with pytest.raises(ExprError) as err:
        load_rules_text(text, source="web.yml")
    assert err.value.position == 36
    assert "web.yml: groups[0].rules[0]" in str(err.value)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"name": "1bad", "expr": "x"}, "name"),
        ({"name": "ok", "expr": "x", "for": "5 min"}, "for"),
        ({"name": "ok", "expr": "x", "severity": "huge"}, "severity"),
        ({"name": "ok", "expr": "x", "labels": {"alertname": "y"}}, "labels.alertname"),
        ({"name": "ok", "expr": "x", "annotations": {"a": "{{ .Foo }}"}}, "annotations.a"),
        ({"name": "ok", "expr": "x", "wat": 1}, "wat"),
        ({"name": "ok", "expr": "1 + 1"}, "expr"),
        ({"name": "ok", "expr": "x", "flap": {"max_flips": 0}}, "flap.max_flips"),
    ],
)
def test_rule_errors_name_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(RuleError) as err:
        rule_from_mapping(spec)
    assert err.value.field == field


def test_duplicate_names_are_refused() -> None:
    twice = GOOD + GOOD.split("rules:\n", 1)[1]
    with pytest.raises(RuleError, match="also defined"):
        load_rules_text(twice)


def test_threshold_form_builds_an_expression() -> None:
    rule = threshold_rule(
        {
            "metric": "queue_depth",
            "matchers": ['queue="mail"'],
            "comparator": ">",
            "value": 100,
            "for": "1m",
        }
    )
    assert rule.name == "queue_depth_threshold"
    assert rule.expr_text == 'queue_depth{queue="mail"} > 100.0'
    assert rule.for_s == 60
    with pytest.raises(RuleError) as err:
        threshold_rule({"metric": "q", "matchers": ["nope"], "comparator": ">", "value": 1})
    assert err.value.field == "matchers[0]"


def test_repository_default_rules_load() -> None:
    rules = load_rules_dir(REPO_RULES)
    names = {r.name for r in rules}
    assert {"CacheHitRatioDrop", "AgentAbsent", "HighErrorRate", "HighCpu"} <= names
    assert all(r.annotations.get("summary") for r in rules)
