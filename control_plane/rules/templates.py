"""Annotation templates: ``{{ $labels.name }}``, ``{{ $value }}`` and a few pipes; pure.

A deliberately small subset of Prometheus' Go templates, so rule files stay compatible with
Prometheus: every template is checked when the rule is loaded, not when it fires.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_TERM = re.compile(
    r"\s*\$(?:labels\.(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)|(?P<value>value))"
    r"\s*(?:\|\s*(?P<pipe>humanize|humanizePercentage|humanizeDuration))?\s*"
)


class TemplateError(ValueError):
    pass


def check_template(text: str) -> None:
    """Raise :class:`TemplateError` when ``text`` uses anything but the supported forms."""
    for m in _PLACEHOLDER.finditer(text):
        if _TERM.fullmatch(m[1]) is None:
            raise TemplateError(
                f"unsupported template {m[0]!r} at position {m.start()}: use "
                "{{ $labels.NAME }} or {{ $value }}, optionally | humanize, "
                "| humanizePercentage or | humanizeDuration"
            )


def render(text: str, labels: Mapping[str, str], value: float) -> str:
    def one(m: re.Match[str]) -> str:
        term = _TERM.fullmatch(m[1])
        if term is None:  # checked at load time; kept verbatim if it slipped through
            return m[0]
        if term["label"]:
            return labels.get(term["label"], "")
        return _format_value(value, term["pipe"])

    return _PLACEHOLDER.sub(one, text)


def _format_value(value: float, pipe: str | None) -> str:
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if pipe == "humanizePercentage":
        return f"{value * 100:.4g}%"
    if pipe == "humanizeDuration":
        return f"{value:.4g}s"
    if pipe == "humanize":
        for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= size:
                return f"{value / size:.4g}{suffix}"
        return f"{value:.4g}"
    return repr(value) if value != int(value) or abs(value) >= 1e15 else str(int(value))
