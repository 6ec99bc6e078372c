"""Functions of one sample's value or labels (``abs``, ``round``, ``hour``, ``label_replace``,
...); pure. Each behaves as Go's ``math`` and ``time`` packages do in Prometheus's
``promql/functions.go``: where Python's ``math`` raises, Go answers NaN or an infinity."""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from control_plane.rules.regex import RegexError, compile_matcher

NAME_LABEL = "__name__"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class LabelFunctionError(ValueError):
    """A label function's arguments are unusable (bad label name or regular expression)."""


def _go(fn: Callable[[float], float], *, below: float | None = None) -> Callable[[float], float]:
    """``fn`` with Go's answers instead of Python's exceptions: NaN for a domain error (or
    ``below`` when given, e.g. -Inf for ``ln(0)``), an infinity on overflow."""

    def wrapped(v: float) -> float:
        try:
            return fn(v)
        except OverflowError:
            return math.inf
        except ValueError:
            if below is not None and v == 0:
                return below
            return math.nan

    return wrapped


def _sgn(v: float) -> float:
    if math.isnan(v):
        return v
    return 1.0 if v > 0 else -1.0 if v < 0 else 0.0


def _atanh(v: float) -> float:
    if v in (1.0, -1.0):
        return math.copysign(math.inf, v)
    return math.atanh(v)


def _exp(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _cosh(v: float) -> float:
    try:
        return math.cosh(v)
    except OverflowError:
        return math.inf


def _sinh(v: float) -> float:
    try:
        return math.sinh(v)
    except OverflowError:
        return math.copysign(math.inf, v)


ELEMENTWISE: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": lambda v: v if not math.isfinite(v) else float(math.ceil(v)),
    "floor": lambda v: v if not math.isfinite(v) else float(math.floor(v)),
    "exp": _exp,
    "sqrt": _go(math.sqrt),
    "ln": _go(math.log, below=-math.inf),
    "log2": _go(math.log2, below=-math.inf),
    "log10": _go(math.log10, below=-math.inf),
    "sgn": _sgn,
    "deg": lambda v: v * 180 / math.pi,
    "rad": lambda v: v * math.pi / 180,
    "sin": _go(math.sin),
    "cos": _go(math.cos),
    "tan": _go(math.tan),
    "asin": _go(math.asin),
    "acos": _go(math.acos),
    "atan": math.atan,
    "sinh": _sinh,
    "cosh": _cosh,
    "tanh": math.tanh,
    "asinh": math.asinh,
    "acosh": _go(math.acosh),
    "atanh": _go(_atanh),
}


def round_to(v: float, to_nearest: float) -> float:
    """Prometheus's ``round``: half up, to a multiple of ``to_nearest``."""
    inverse = 1.0 / to_nearest if to_nearest else math.inf
    return math.floor(v * inverse + 0.5) / inverse


def go_max(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return max(a, b)


def go_min(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return min(a, b)


def _date(v: float) -> datetime | None:
    if not math.isfinite(v) or abs(v) > 253402300799:
        return None
    return datetime.fromtimestamp(int(v), UTC)


def _days_in_month(d: datetime) -> float:
    return float(calendar.monthrange(d.year, d.month)[1])


DATE_PARTS: dict[str, Callable[[datetime], float]] = {
    "day_of_month": lambda d: float(d.day),
    "day_of_week": lambda d: float((d.weekday() + 1) % 7),  # Sunday is 0
    "day_of_year": lambda d: float(d.timetuple().tm_yday),
    "days_in_month": _days_in_month,
    "hour": lambda d: float(d.hour),
    "minute": lambda d: float(d.minute),
    "month": lambda d: float(d.month),
    "year": lambda d: float(d.year),
}


def date_part(func: str, v: float) -> float:
    d = _date(v)
    return math.nan if d is None else DATE_PARTS[func](d)


def check_label_name(name: str) -> None:
    if not _LABEL_NAME.fullmatch(name):
        raise LabelFunctionError(f"invalid label name {name!r}")


Relabel = Callable[[Mapping[str, str]], dict[str, str]]


def label_replacer(dst: str, replacement: str, src: str, regex: str) -> Relabel:
    """Prometheus's ``label_replace``, its arguments checked once: when ``regex`` matches the
    whole value of ``src``, ``dst`` becomes ``replacement`` with ``$1``/``${name}`` expanded
    (an empty result removes ``dst``); otherwise the labels are unchanged."""
    try:
        pattern = compile_matcher(regex)
    except RegexError as exc:
        raise LabelFunctionError(f"invalid regular expression in label_replace(): {regex}") from exc
    check_label_name(dst)

    def relabel(labels: Mapping[str, str]) -> dict[str, str]:
        out = dict(labels)
        m = pattern.fullmatch(labels.get(src, ""))
        if m is not None:
            _set(out, dst, expand(m, replacement))
        return out

    return relabel


def label_replace(
    labels: Mapping[str, str], dst: str, replacement: str, src: str, regex: str
) -> dict[str, str]:
    return label_replacer(dst, replacement, src, regex)(labels)


def _set(labels: dict[str, str], name: str, value: str) -> None:
    if value:
        labels[name] = value
    else:
        labels.pop(name, None)  # an empty value is no label


_GROUP_REF = re.compile(r"\$(?:\{([^}]*)\}|([a-zA-Z0-9_]+)|(\$))")


def expand(m: re.Match[str], template: str) -> str:
    """Go's ``Regexp.Expand``: ``$1``, ``$name`` (the longest run of name characters, so
    ``$1x`` is the group ``1x``) and ``${name}``; an unknown group expands to nothing."""

    def group(ref: re.Match[str]) -> str:
        if ref[3]:
            return "$"
        name = ref[1] if ref[1] is not None else ref[2]
        try:
            key: int | str = int(name) if name.isdigit() else name
            return m.group(key) or ""
        except IndexError:
            return ""

    return _GROUP_REF.sub(group, template)


def label_joiner(dst: str, separator: str, sources: tuple[str, ...]) -> Relabel:
    """Prometheus's ``label_join``: ``dst`` becomes the ``sources``' values joined."""
    check_label_name(dst)
    for src in sources:
        check_label_name(src)

    def relabel(labels: Mapping[str, str]) -> dict[str, str]:
        out = dict(labels)
        _set(out, dst, separator.join(labels.get(src, "") for src in sources))
        return out

    return relabel


_DIGITS = re.compile(r"(\d+)")


def _natural(value: str) -> tuple[tuple[int, int | str], ...]:
    """A key that orders digit runs by number (`cpu2` before `cpu10`)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(value) if part
    )


class _Labelled(Protocol):
    @property
    def labels(self) -> Mapping[str, str]: ...


_L = TypeVar("_L", bound=_Labelled)


def sort_by_label(samples: list[_L], names: list[str], *, descending: bool) -> list[_L]:
    """``sort_by_label``: by the named labels' values in natural order, then by all labels."""

    def key(s: _L) -> tuple[object, ...]:
        named = tuple(_natural(s.labels.get(n, "")) for n in names)
        return (named, sorted(s.labels.items()))

    return sorted(samples, key=key, reverse=descending)
