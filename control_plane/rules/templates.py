"""Annotation templates: ``{{ $labels.name }}``, ``{{ $value }}`` and Prometheus' humanising
functions, as a pipe (``{{ $value | humanize }}``) or a call (``{{ humanize $value }}``); pure.

A deliberately small subset of Prometheus' Go templates, so rule files stay compatible with
Prometheus: every template is checked when the rule is loaded, not when it fires. The functions
print what Prometheus' ``template/template.go`` prints for the same value (Go's ``%.4g``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_FUNCTIONS = (
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
)
_NAMES = "|".join(sorted(_FUNCTIONS, key=len, reverse=True))
_TERM = re.compile(
    r"\s*(?:"
    r"\$(?:labels\.(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)|(?P<value>value))"
    rf"\s*(?:\|\s*(?P<pipe>{_NAMES}))?"
    rf"|(?P<call>{_NAMES})\s+\$value"
    r")\s*"
)
_SMALL_PREFIXES = ("m", "u", "n", "p", "f", "a", "z", "y")


class TemplateError(ValueError):
    pass


def check_template(text: str) -> None:
    """Raise :class:`TemplateError` when ``text`` uses anything but the supported forms."""
    for m in _PLACEHOLDER.finditer(text):
        if _TERM.fullmatch(m[1]) is None:
            raise TemplateError(
                f"unsupported template {m[0]!r} at position {m.start()}: use "
                "{{ $labels.NAME }} or {{ $value }}, optionally | " + " | ".join(_FUNCTIONS)
            )


def render(text: str, labels: Mapping[str, str], value: float) -> str:
    def one(m: re.Match[str]) -> str:
        term = _TERM.fullmatch(m[1])
        if term is None:  # checked at load time; kept verbatim if it slipped through
            return m[0]
        if term["label"]:
            return labels.get(term["label"], "")
        function = term["pipe"] or term["call"]
        return FUNCTIONS[function](value) if function else _plain(value)

    return _PLACEHOLDER.sub(one, text)


def _plain(value: float) -> str:
    """``{{ $value }}`` as Go's ``%v`` prints a float64 (shortest repr; whole numbers bare)."""
    if not math.isfinite(value):
        return _g4(value)
    return repr(value) if value != int(value) or abs(value) >= 1e21 else str(int(value))


def _g4(value: float) -> str:
    """Go's ``%.4g`` (Python's agrees but for the names of the non-finite values)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def humanize(value: float) -> str:
    """1234567 -> "1.235M", 0.012 -> "12m": SI prefixes, 4 significant digits."""
    if value == 0 or not math.isfinite(value):
        return _g4(value)
    prefix = ""
    if abs(value) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix, value = p, value / 1000
        return _g4(value) + prefix
    for p in _SMALL_PREFIXES:
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return _g4(value) + prefix


def humanize1024(value: float) -> str:
    """1048576 -> "1Mi": binary prefixes."""
    if abs(value) <= 1 or not math.isfinite(value):
        return _g4(value)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(value) < 1024:
            break
        prefix, value = p, value / 1024
    return _g4(value) + prefix


def humanize_duration(value: float) -> str:
    """Seconds: 2.7795 -> "2.78s", 90061 -> "1d 1h 1m 1s", 0.0123 -> "12.3ms"."""
    if not math.isfinite(value):
        return _g4(value)
    if value == 0:
        return "0s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        seconds, minutes = whole % 60, whole // 60 % 60
        hours, days = whole // 3600 % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(value)}s"
    prefix = ""
    for p in _SMALL_PREFIXES:
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{_g4(value)}{prefix}s"


def humanize_percentage(value: float) -> str:
    """A ratio as a percentage: 0.1234567 -> "12.35%"."""
    return _g4(value * 100) + "%"


def humanize_timestamp(value: float) -> str:
    """Unix seconds as Go prints a UTC time: "2015-06-23 13:19:44.128 +0000 UTC" (Prometheus
    keeps milliseconds, truncated)."""
    if not math.isfinite(value):
        return _g4(value)
    nanos = int(value * 1e9)
    millis = abs(nanos) // 1_000_000 * (-1 if nanos < 0 else 1)
    try:
        when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=millis)
    except OverflowError:
        return _g4(value)
    fraction = f".{when.microsecond // 1000:03d}".rstrip("0").rstrip(".")
    return f"{when:%Y-%m-%d %H:%M:%S}{fraction} +0000 UTC"


FUNCTIONS: Mapping[str, Callable[[float], str]] = {
    "humanize": humanize,
    "humanize1024": humanize1024,
    "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage,
    "humanizeTimestamp": humanize_timestamp,
}
