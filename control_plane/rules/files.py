"""Rule files: Prometheus-style YAML in, :class:`Rule` values out, and back out as a Prometheus
rule file; pure apart from reading the folder.

The file format is Prometheus' (``groups: [{name, rules: [{alert, expr, for, ...}]}]``) so the
same file works with ``promtool``; Haetae's extras (``severity``, ``escalation_policy``,
``flap``) are accepted beside them, and ``labels.severity`` is read as the severity.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from control_plane.rules.durations import format_duration
from control_plane.rules.errors import RuleError
from control_plane.rules.model import Rule, RuleSource, rule_from_mapping
from control_plane.rules.printer import format_expr, needs_rewrite

_FILE_KEYS = frozenset(
    {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
    | {"severity", "escalation_policy", "flap"}
)


def load_rules_text(text: str, *, source: str = "<string>") -> list[Rule]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError("file", f"invalid YAML: {exc}", source=source) from None
    if doc is None:
        return []
    if not isinstance(doc, dict) or set(doc) != {"groups"} or not isinstance(doc["groups"], list):
        raise RuleError("groups", "a rule file is a mapping with one key, groups", source=source)
    rules: list[Rule] = []
    for gi, group in enumerate(doc["groups"]):
        if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
            raise RuleError(f"groups[{gi}]", "a group has a name and rules", source=source)
        for ri, raw in enumerate(group["rules"]):
            where = f"{source}: groups[{gi}].rules[{ri}]"
            rules.append(_rule_from_file(raw, where))
    _check_unique(rules)
    return rules


def load_rules_dir(folder: Path) -> list[Rule]:
    """Every ``*.yml``/``*.yaml`` file in ``folder`` (not recursive), in name order."""
    rules: list[Rule] = []
    if not folder.is_dir():
        return rules
    for path in sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml")):
        rules.extend(load_rules_text(path.read_text(encoding="utf-8"), source=str(path)))
    _check_unique(rules)
    return rules


def export_prometheus(rules: Iterable[Rule], *, group: str = "haetae") -> str:
    """A Prometheus rule file for ``rules`` (severity becomes a label)."""
    out = []
    for r in rules:
        # Prometheus 3's duration forms (`[90]`, `1h` as a number) spelled for Prometheus 2.
        expr_text = format_expr(r.expr) if needs_rewrite(r.expr_text) else r.expr_text
        entry: dict[str, Any] = {"alert": r.name, "expr": expr_text}
        if r.for_s:
            entry["for"] = format_duration(r.for_s)
        if r.keep_firing_for_s:
            entry["keep_firing_for"] = format_duration(r.keep_firing_for_s)
        entry["labels"] = {**r.labels, "severity": r.severity.value}
        if r.annotations:
            entry["annotations"] = dict(r.annotations)
        out.append(entry)
    return yaml.safe_dump(
        {"groups": [{"name": group, "rules": out}]}, sort_keys=False, allow_unicode=True
    )


def _rule_from_file(raw: Any, where: str) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError("rule", "a rule is a mapping", source=where)
    if "record" in raw:
        raise RuleError("record", "recording rules are not supported", source=where)
    unknown = sorted(set(raw) - _FILE_KEYS)
    if unknown:
        raise RuleError(unknown[0], "unknown key", source=where)
    spec = dict(raw)
    spec["name"] = spec.pop("alert", None)
    labels = dict(spec.get("labels") or {})
    if "severity" in labels and "severity" not in spec:
        spec["severity"] = labels.pop("severity")
    spec["labels"] = labels
    return rule_from_mapping(spec, source=RuleSource.FILE, origin=where)


def _check_unique(rules: list[Rule]) -> None:
    seen: dict[str, Rule] = {}
    for r in rules:
        if r.name in seen:
            raise RuleError(
                "alert", f"{r.name!r} is also defined at {seen[r.name].origin}", source=r.origin
            )
        seen[r.name] = r
