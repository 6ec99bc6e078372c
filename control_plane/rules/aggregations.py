"""Aggregation operators over one instant vector (``sum``, ``topk``, ``quantile``, ...); pure.
Semantics follow Prometheus's ``promql/engine.go`` (``aggregation``, ``aggregationK``) and
``quantile`` in ``promql/quantile.go``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from control_plane.rules.functions import (
    kahan_sum,
    mean,
    nan_aware_max,
    nan_aware_min,
    variance,
)

NAME_LABEL = "__name__"
Labels = Mapping[str, str]
GroupKey = tuple[tuple[str, str], ...]
_LABEL_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class AggregationError(ValueError):
    """A parameter the aggregation cannot use (a bad `count_values` label, a huge `k`)."""


class _Sample(Protocol):
    @property
    def labels(self) -> Labels: ...

    @property
    def value(self) -> float: ...

    @property
    def drop_name(self) -> bool: ...


_S = TypeVar("_S", bound=_Sample)


def quantile(q: float, values: Sequence[float]) -> float:
    """Prometheus's ``quantile``: linear interpolation between the closest ranks (NaN sorts
    first), -Inf below 0, +Inf above 1."""
    if not values or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values, key=lambda v: (not math.isnan(v), v if not math.isnan(v) else 0.0))
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


_SIMPLE: dict[str, Callable[[list[float]], float]] = {
    "sum": kahan_sum,
    "avg": mean,
    "count": lambda values: float(len(values)),
    "min": nan_aware_min,
    "max": nan_aware_max,
    "group": lambda values: 1.0,
    "stdvar": variance,
    "stddev": lambda values: math.sqrt(variance(values)),
}


def group_labels(labels: Labels, grouping: Sequence[str], without: bool) -> dict[str, str]:
    """The labels a sample's group keeps: those in `by(...)`, or all but `without(...)`'s and
    the metric name."""
    if without:
        drop = {*grouping, NAME_LABEL}
        return {k: v for k, v in labels.items() if k not in drop}
    return {k: labels[k] for k in grouping if labels.get(k, "") != ""}


class Grouping:
    """`by(...)`/`without(...)`: the group of a label set, remembered by the mapping's
    identity (a range query's series keep one labels mapping over all its steps)."""

    # Past this many remembered label sets (mappings made afresh at every step), start over.
    _MAX_REMEMBERED = 10_000

    def __init__(self, labels: Sequence[str], without: bool) -> None:
        self.labels = tuple(labels)
        self.without = without
        self._seen: dict[int, tuple[Labels, dict[str, str], GroupKey]] = {}

    def of(self, labels: Labels) -> tuple[dict[str, str], GroupKey]:
        hit = self._seen.get(id(labels))
        if hit is not None and hit[0] is labels:
            return hit[1], hit[2]
        kept = group_labels(labels, self.labels, self.without)
        key = tuple(sorted(kept.items()))
        if len(self._seen) >= self._MAX_REMEMBERED:
            self._seen.clear()
        # The mapping is held with its group, so its id cannot be reused while remembered.
        self._seen[id(labels)] = (labels, kept, key)
        return kept, key


def _groups(
    samples: Sequence[_S], grouping: Grouping
) -> dict[GroupKey, tuple[dict[str, str], list[_S]]]:
    groups: dict[GroupKey, tuple[dict[str, str], list[_S]]] = {}
    for s in samples:
        labels, key = grouping.of(s.labels)
        held = groups.get(key)
        if held is None:
            held = groups[key] = (labels, [])
        held[1].append(s)
    return groups


def _drops_name(labels: Labels, members: Sequence[_Sample]) -> bool:
    """A group keeps `__name__` (`by (__name__)`) but drops it at the end when any member's
    name was to go (Prometheus's delayed name removal)."""
    return NAME_LABEL in labels and any(m.drop_name for m in members)


def aggregate_values(
    op: str, samples: Sequence[_Sample], grouping: Grouping, param: float
) -> list[tuple[dict[str, str], float, bool]]:
    """``sum``, ``avg``, ``count``, ``min``, ``max``, ``group``, ``stddev``, ``stdvar``,
    ``quantile``: one (labels, value, name to drop) per group, in the order groups first
    appear."""
    out = []
    for labels, members in _groups(samples, grouping).values():
        values = [s.value for s in members]
        value = quantile(param, values) if op == "quantile" else _SIMPLE[op](values)
        out.append((labels, value, _drops_name(labels, members)))
    return out


def count_values(
    label: str, samples: Sequence[_Sample], grouping: Sequence[str], without: bool
) -> list[tuple[dict[str, str], float, bool]]:
    """How many samples have each value; the value (Go's shortest ``%f`` form) goes in
    ``label``."""
    if not label or label[0].isdigit() or not set(label) <= _LABEL_NAME_CHARS:
        raise AggregationError(f"invalid label name {label!r}")
    keys = tuple(grouping) if without else (*grouping, label)
    counts: dict[GroupKey, tuple[dict[str, str], float, bool]] = {}
    for s in samples:
        with_value = {**s.labels, label: format_value(s.value)}
        labels = group_labels(with_value, keys, without)
        if without:
            labels[label] = with_value[label]
        key = tuple(sorted(labels.items()))
        held = counts.get(key)
        count = (held[1] if held else 0.0) + 1.0
        drop = (held is not None and held[2]) or _drops_name(labels, [s])
        counts[key] = (labels, count, drop)
    return list(counts.values())


def top_k(op: str, k_param: float, samples: Sequence[_S], grouping: Grouping) -> list[_S]:
    """``topk``/``bottomk``: the k largest/smallest samples of each group, whole (labels kept),
    largest/smallest first; NaN counts as the worst value."""
    if math.isnan(k_param):
        raise AggregationError("the k of topk/bottomk is NaN")
    if abs(k_param) >= 2.0**63:
        raise AggregationError(f"scalar value {k_param} overflows int64")
    k = int(k_param)
    if k < 1:
        return []
    sign = 1.0 if op == "topk" else -1.0

    def rank(s: _S) -> tuple[bool, float]:
        return (math.isnan(s.value), 0.0 if math.isnan(s.value) else -sign * s.value)

    out: list[_S] = []
    for _, members in _groups(samples, grouping).values():
        out.extend(sorted(members, key=rank)[:k])
    return out


def format_value(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: the shortest digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" not in text and "E" not in text:
        return text[:-2] if text.endswith(".0") else text
    digits, exp_text = text.lower().split("e")
    exp = int(exp_text)
    negative = digits.startswith("-")
    digits = digits.lstrip("-")
    whole, _, frac = digits.partition(".")
    mantissa = (whole + frac).rstrip("0") or "0"
    point = len(whole) + exp
    if point <= 0:
        body = "0." + "0" * -point + mantissa
    elif point >= len(mantissa):
        body = mantissa + "0" * (point - len(mantissa))
    else:
        body = mantissa[:point] + "." + mantissa[point:]
    return ("-" if negative else "") + body
