"""Alerting rules: a PromQL parser and evaluator (instant and range) over the ingest windows,
the rule model and files, the alert state machine, its persistence and the engine that runs
it all."""

from control_plane.rules.context import RULE_ENGINE, rules_ctx
from control_plane.rules.engine import RuleEngine
from control_plane.rules.errors import ExprError, RuleError
from control_plane.rules.evaluator import EvaluationError, Sample, evaluate, evaluate_range
from control_plane.rules.files import export_prometheus, load_rules_dir, load_rules_text
from control_plane.rules.model import Rule, RuleSource, Severity, rule_from_mapping, threshold_rule
from control_plane.rules.parser import parse_expr, parse_query
from control_plane.rules.printer import format_expr
from control_plane.rules.state import Alert, AlertState, Transition, advance
from control_plane.rules.store import AlertStore

__all__ = [
    "RULE_ENGINE",
    "Alert",
    "AlertState",
    "AlertStore",
    "EvaluationError",
    "ExprError",
    "Rule",
    "RuleEngine",
    "RuleError",
    "RuleSource",
    "Sample",
    "Severity",
    "Transition",
    "advance",
    "evaluate",
    "evaluate_range",
    "export_prometheus",
    "format_expr",
    "load_rules_dir",
    "load_rules_text",
    "parse_expr",
    "parse_query",
    "rule_from_mapping",
    "rules_ctx",
    "threshold_rule",
]
