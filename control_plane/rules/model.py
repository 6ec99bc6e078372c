"""The rule model: validated once, from a file, the API or the threshold form; pure.

A rule is immutable and carries its parsed expression; :func:`rule_from_mapping` is the one way
in and raises :class:`RuleError` (or :class:`ExprError`) naming the field at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from control_plane.query.matchers import LABEL_NAME, METRIC_NAME, parse_matcher
from control_plane.rules.ast import Expr, ValueType
from control_plane.rules.durations import coerce_duration, format_duration
from control_plane.rules.errors import ExprError, RuleError
from control_plane.rules.evaluator import selector_names, uses_absent
from control_plane.rules.parser import parse_expr
from control_plane.rules.templates import TemplateError, check_template
from haetae.web.problem import ProblemError

RULE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,127}")
DEFAULT_FLAP_MAX_FLIPS = 4
DEFAULT_FLAP_WINDOW_S = 600.0
# Labels an alert gets from the engine; a rule may not set them itself.
RESERVED_LABELS = frozenset({"alertname", "severity", "__name__"})


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class RuleSource(StrEnum):
    FILE = "file"
    API = "api"


@dataclass(frozen=True)
class Rule:
    name: str
    expr_text: str
    expr: Expr = field(compare=False, repr=False)
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    severity: Severity = Severity.WARNING
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    escalation_policy: str | None = None
    # Flap control: more than flap_max_flips state flips within flap_window_s holds it firing.
    flap_max_flips: int = DEFAULT_FLAP_MAX_FLIPS
    flap_window_s: float = DEFAULT_FLAP_WINDOW_S
    source: RuleSource = RuleSource.API
    origin: str = ""  # the file it came from, for file rules

    @property
    def metric_names(self) -> frozenset[str]:
        return frozenset(selector_names(self.expr))

    @property
    def uses_absent(self) -> bool:
        return uses_absent(self.expr)

    def spec(self) -> dict[str, Any]:
        """The rule as JSON (the API's shape; :func:`rule_from_mapping` reads it back)."""
        return {
            "name": self.name,
            "expr": self.expr_text,
            "for": format_duration(self.for_s),
            "keep_firing_for": format_duration(self.keep_firing_for_s),
            "severity": self.severity.value,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "escalation_policy": self.escalation_policy,
            "flap": {
                "max_flips": self.flap_max_flips,
                "window": format_duration(self.flap_window_s),
            },
        }


_KEYS = frozenset(
    {
        "name",
        "expr",
        "for",
        "keep_firing_for",
        "severity",
        "labels",
        "annotations",
        "escalation_policy",
        "flap",
    }
)


def rule_from_mapping(
    data: Any,
    *,
    source: RuleSource = RuleSource.API,
    origin: str = "",
) -> Rule:
    """Validate ``data`` (a mapping in the API's shape) into a :class:`Rule`."""
    where = origin or None
    if not isinstance(data, Mapping):
        raise RuleError("rule", "a rule is an object", source=where)
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise RuleError(unknown[0], "unknown key", source=where)
    name = data.get("name")
    if not isinstance(name, str) or not RULE_NAME.fullmatch(name):
        raise RuleError(
            "name",
            "a name is 1-128 letters, digits, '_', '.', ':' or '-', starting with a letter",
            source=where,
        )
    expr_text = data.get("expr")
    if not isinstance(expr_text, str):
        raise RuleError("expr", "an expression (string) is required", source=where)
    try:
        expr = parse_expr(expr_text)
    except ExprError as exc:
        raise ExprError(exc.detail, exc.position, source=where) from None
    if expr.type is not ValueType.VECTOR:
        raise ExprError("a rule's expression must be an instant vector", 0, source=where)
    for_s = _duration(data, "for", 0.0, where)
    keep_s = _duration(data, "keep_firing_for", 0.0, where)
    severity_text = data.get("severity", Severity.WARNING.value)
    try:
        severity = Severity(severity_text)
    except ValueError:
        choices = ", ".join(s.value for s in Severity)
        raise RuleError("severity", f"one of {choices}", source=where) from None
    labels = _string_map(data, "labels", where)
    for key in labels:
        if not LABEL_NAME.fullmatch(key) or key.startswith("__"):
            raise RuleError(f"labels.{key}", "not a valid label name", source=where)
        if key in RESERVED_LABELS:
            raise RuleError(
                f"labels.{key}", "set by the engine; use the rule's field", source=where
            )
    annotations = _string_map(data, "annotations", where)
    for key, text in annotations.items():
        try:
            check_template(text)
        except TemplateError as exc:
            raise RuleError(f"annotations.{key}", str(exc), source=where) from None
    policy = data.get("escalation_policy")
    if policy is not None and (not isinstance(policy, str) or not policy):
        raise RuleError("escalation_policy", "the name of an escalation policy", source=where)
    max_flips, flap_window = _flap(data.get("flap"), where)
    return Rule(
        name=name,
        expr_text=expr_text,
        expr=expr,
        for_s=for_s,
        keep_firing_for_s=keep_s,
        severity=severity,
        labels=labels,
        annotations=annotations,
        escalation_policy=policy,
        flap_max_flips=max_flips,
        flap_window_s=flap_window,
        source=source,
        origin=origin,
    )


def _duration(data: Mapping[str, Any], key: str, default: float, where: str | None) -> float:
    raw = data.get(key)
    if raw is None:
        return default
    try:
        return coerce_duration(raw)
    except ValueError as exc:
        raise RuleError(key, str(exc), source=where) from None


def _string_map(data: Mapping[str, Any], key: str, where: str | None) -> dict[str, str]:
    raw = data.get(key) or {}
    if not isinstance(raw, Mapping):
        raise RuleError(key, "an object of strings", source=where)
    out = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not isinstance(v, str | int | float) or isinstance(v, bool):
            raise RuleError(f"{key}.{k}", "values are strings", source=where)
        out[k] = str(v)
    return out


def _flap(raw: Any, where: str | None) -> tuple[int, float]:
    if raw is None:
        return DEFAULT_FLAP_MAX_FLIPS, DEFAULT_FLAP_WINDOW_S
    if not isinstance(raw, Mapping) or set(raw) - {"max_flips", "window"}:
        raise RuleError("flap", "an object with max_flips and window", source=where)
    flips = raw.get("max_flips", DEFAULT_FLAP_MAX_FLIPS)
    if not isinstance(flips, int) or isinstance(flips, bool) or flips < 1:
        raise RuleError("flap.max_flips", "a whole number >= 1", source=where)
    try:
        window = coerce_duration(raw.get("window", DEFAULT_FLAP_WINDOW_S))
    except ValueError as exc:
        raise RuleError("flap.window", str(exc), source=where) from None
    return flips, window


_COMPARATORS = frozenset({">", "<", ">=", "<=", "==", "!="})
_THRESHOLD_KEYS = frozenset(
    {"name", "metric", "matchers", "comparator", "value", "for", "severity", "labels"}
    | {"annotations", "keep_firing_for", "escalation_policy"}
)


def threshold_rule(data: Any) -> Rule:
    """The simple form: ``metric``, ``matchers`` (``['path="/api"']``), ``comparator``,
    ``value`` and ``for`` become ``metric{matchers} <comparator> value``."""
    if not isinstance(data, Mapping):
        raise RuleError("body", "a threshold is an object")
    unknown = sorted(set(data) - _THRESHOLD_KEYS)
    if unknown:
        raise RuleError(unknown[0], "unknown key")
    metric = data.get("metric")
    if not isinstance(metric, str) or not METRIC_NAME.fullmatch(metric):
        raise RuleError("metric", "a metric name is required")
    matchers = data.get("matchers") or []
    if not isinstance(matchers, list) or not all(isinstance(m, str) for m in matchers):
        raise RuleError("matchers", "a list of label matchers like 'path=\"/api\"'")
    for i, text in enumerate(matchers):
        try:
            parse_matcher(text, where=f"matchers[{i}]")
        except ProblemError as exc:
            raise RuleError(f"matchers[{i}]", exc.detail or "not a label matcher") from None
    comparator = data.get("comparator")
    if comparator not in _COMPARATORS:
        raise RuleError("comparator", "one of " + ", ".join(sorted(_COMPARATORS)))
    value = data.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        raise RuleError("value", "a number")
    selector = metric + ("{" + ", ".join(matchers) + "}" if matchers else "")
    spec = {k: data[k] for k in data if k in _KEYS and k != "expr"}
    spec.setdefault("name", f"{metric}_threshold")
    spec["expr"] = f"{selector} {comparator} {float(value)!r}"
    return rule_from_mapping(spec)
