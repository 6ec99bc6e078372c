"""Evaluating a parsed expression at one instant over the series windows; pure (the source of
points and the evaluation time are arguments).

Results are instant vectors of :class:`Sample` (labels include ``__name__`` until a function,
aggregation or arithmetic drops it, and ``agent`` for the series' agent) or a scalar.
Vector-vector operations follow Prometheus' vector matching (:mod:`.matching`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from control_plane.ingest.windows import SeriesRef
from control_plane.query.matchers import AGENT_LABEL, Matcher, MatchOp
from control_plane.rules.ast import (
    Aggregate,
    Binary,
    Call,
    Expr,
    MatrixSelector,
    NumberLiteral,
    Unary,
    VectorMatching,
    VectorSelector,
)
from control_plane.rules.functions import (
    OVER_TIME,
    Point,
    bucket_quantile,
    extrapolated_rate,
    kahan_sum,
    mean,
    nan_aware_max,
    nan_aware_min,
)
from control_plane.rules.matching import MatchingError, match_pairs, set_operation

NAME_LABEL = "__name__"
# How far back an instant selector looks for the latest point (Prometheus' default).
DEFAULT_LOOKBACK_S = 300.0
# Instants are floats of seconds, so `at - range` can land a hair off a stored instant. Both
# edges of `(start, end]` move by half a microsecond (PostgreSQL's resolution): a point exactly
# on an edge then falls on the side Prometheus's integer milliseconds put it.
_EDGE_S = 0.5e-6

Labels = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Labels
    value: float


Vector = list[Sample]
Value = float | Vector


class SeriesSource(Protocol):
    """What the evaluator reads: the ingest windows (``SeriesWindows``) fit, and so does a
    store-backed source (the Prometheus HTTP API's)."""

    def select(self, name: str | None, matchers: Sequence[Matcher] = ()) -> list[SeriesRef]:
        """Series named ``name`` (any name when None; a selector's own ``__name__`` matchers
        are among ``matchers``) whose labels satisfy every matcher."""
        ...

    def points(self, series_id: int, start: float, end: float) -> list[Point]: ...


def evaluate(
    expr: Expr, source: SeriesSource, at: float, *, lookback_s: float = DEFAULT_LOOKBACK_S
) -> Value:
    """The value of ``expr`` at time ``at`` (seconds since the epoch)."""
    return _Evaluator(source, at, lookback_s).eval(expr)


def evaluate_range(
    expr: Expr,
    source: SeriesSource,
    start: float,
    end: float,
    step: float,
    *,
    lookback_s: float = DEFAULT_LOOKBACK_S,
) -> dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[Point]]]:
    """``expr`` at ``start``, ``start + step``, ... up to ``end``: per result label set (the
    key: its sorted items) the labels and the ``(t, value)`` points, oldest first. A scalar
    result is one series with no labels."""
    if step <= 0:
        raise ValueError("step must be positive")
    out: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[Point]]] = {}
    n = int((end - start) // step) if end >= start else -1
    for i in range(n + 1):
        t = start + i * step
        value = evaluate(expr, source, t, lookback_s=lookback_s)
        samples = [Sample({}, value)] if isinstance(value, float) else value
        for s in samples:
            key = tuple(sorted(s.labels.items()))
            out.setdefault(key, (dict(s.labels), []))[1].append((t, s.value))
    return out


def series_labels(ref: SeriesRef) -> dict[str, str]:
    labels = dict(ref.labels)
    labels[AGENT_LABEL] = ref.agent_id
    labels[NAME_LABEL] = ref.name
    return labels


def selector_names(expr: Expr) -> set[str]:
    """Metric names an expression reads (to know which ingested series concern a rule)."""
    if isinstance(expr, VectorSelector):
        return {expr.name}
    if isinstance(expr, MatrixSelector):
        return {expr.selector.name}
    if isinstance(expr, Call):
        return set().union(*(selector_names(a) for a in expr.args))
    if isinstance(expr, Aggregate | Unary):
        return selector_names(expr.expr)
    if isinstance(expr, Binary):
        return selector_names(expr.lhs) | selector_names(expr.rhs)
    return set()


def uses_absent(expr: Expr) -> bool:
    if isinstance(expr, Call):
        return expr.func == "absent" or any(uses_absent(a) for a in expr.args)
    if isinstance(expr, Aggregate | Unary):
        return uses_absent(expr.expr)
    if isinstance(expr, Binary):
        return uses_absent(expr.lhs) or uses_absent(expr.rhs)
    return False


def _drop_name(labels: Labels) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != NAME_LABEL}


def _pow(a: float, b: float) -> float:
    """Go's ``math.Pow``: where Python's raises, Go answers an infinity or NaN."""
    odd = b.is_integer() and b % 2 == 1
    try:
        return math.pow(a, b)
    except OverflowError:
        return -math.inf if a < 0 and odd else math.inf
    except ValueError:
        if a == 0:  # zero to a negative power; -0 to an odd one is -Inf
            return -math.inf if odd and math.copysign(1.0, a) < 0 else math.inf
        return math.nan  # a negative base to a fractional power


def _div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _mod(a: float, b: float) -> float:
    """Go's ``math.Mod``: NaN for an infinite dividend, a zero or NaN divisor (Python's fmod
    raises on an infinite dividend); the dividend itself for an infinite divisor."""
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.fmod(a, b)


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _div,
    "%": _mod,
    "^": _pow,
}
_AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "sum": kahan_sum,
    "avg": mean,
    "count": lambda values: float(len(values)),
    "min": nan_aware_min,
    "max": nan_aware_max,
}
_CMP: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}


class _Evaluator:
    def __init__(self, source: SeriesSource, at: float, lookback_s: float) -> None:
        self.source = source
        self.at = at
        self.lookback_s = lookback_s

    def eval(self, expr: Expr) -> Value:
        if isinstance(expr, NumberLiteral):
            return expr.value
        if isinstance(expr, VectorSelector):
            return self.instant(expr)
        if isinstance(expr, Call):
            return self.call(expr)
        if isinstance(expr, Aggregate):
            return self.aggregate(expr)
        if isinstance(expr, Unary):
            inner = self.eval(expr.expr)
            if expr.op == "+":
                return inner
            if isinstance(inner, float):
                return -inner
            return [Sample(_drop_name(s.labels), -s.value) for s in inner]
        if isinstance(expr, Binary):
            return self.binary(expr)
        raise TypeError(f"a range vector cannot be evaluated on its own: {expr!r}")

    # -- selectors -----------------------------------------------------------------------

    def instant(self, sel: VectorSelector) -> Vector:
        end = self.at - sel.offset_s
        out = []
        for ref in self.source.select(sel.name, sel.matchers):
            pts = self.source.points(ref.series_id, end - self.lookback_s + _EDGE_S, end + _EDGE_S)
            if pts:
                out.append(Sample(series_labels(ref), pts[-1][1]))
        return out

    def matrix(self, ms: MatrixSelector) -> list[tuple[SeriesRef, list[Point], float, float]]:
        end = self.at - ms.selector.offset_s
        start = end - ms.range_s
        out = []
        for ref in self.source.select(ms.selector.name, ms.selector.matchers):
            pts = self.source.points(ref.series_id, start + _EDGE_S, end + _EDGE_S)
            if pts:
                out.append((ref, pts, start, end))
        return out

    # -- functions -----------------------------------------------------------------------

    def call(self, call: Call) -> Vector:
        if call.func == "absent":
            return self.absent(call.args[0])
        if call.func == "histogram_quantile":
            return self.histogram_quantile(call)
        arg = call.args[0]
        assert isinstance(arg, MatrixSelector)
        out = []
        for ref, pts, start, end in self.matrix(arg):
            labels = _drop_name(series_labels(ref))
            if call.func in ("rate", "increase"):
                value = extrapolated_rate(pts, start, end, is_rate=call.func == "rate")
                if value is not None:
                    out.append(Sample(labels, value))
            else:
                out.append(Sample(labels, OVER_TIME[call.func]([v for _, v in pts])))
        return out

    def absent(self, arg: Expr) -> Vector:
        present = self.eval(arg)
        if present:
            return []
        labels: dict[str, str] = {}
        if isinstance(arg, VectorSelector):
            # Labels the missing series would have had: the equality matchers, as Prometheus.
            equal: dict[str, list[Matcher]] = {}
            for m in arg.matchers:
                equal.setdefault(m.label, []).append(m)
            for label, ms in equal.items():
                eq = [m for m in ms if m.op is MatchOp.EQ]
                if len(eq) == 1 and len(ms) == 1:
                    labels[label] = eq[0].value
        return [Sample(labels, 1.0)]

    def histogram_quantile(self, call: Call) -> Vector:
        q = self.eval(call.args[0])
        vec = self.eval(call.args[1])
        assert isinstance(q, float) and isinstance(vec, list)
        groups: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[Point]]] = {}
        for s in vec:
            try:
                le = float(s.labels.get("le", "x").replace("+Inf", "inf"))
            except ValueError:
                continue  # not a bucket: Prometheus ignores it too
            labels = {k: v for k, v in s.labels.items() if k not in ("le", NAME_LABEL)}
            key = tuple(sorted(labels.items()))
            groups.setdefault(key, (labels, []))[1].append((le, s.value))
        return [Sample(labels, bucket_quantile(q, b)) for labels, b in groups.values()]

    # -- aggregation ---------------------------------------------------------------------

    def aggregate(self, agg: Aggregate) -> Vector:
        inner = self.eval(agg.expr)
        assert isinstance(inner, list)
        groups: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[float]]] = {}
        for s in inner:
            if agg.without:
                drop = {*agg.grouping, NAME_LABEL}
                labels = {k: v for k, v in s.labels.items() if k not in drop}
            else:
                labels = {k: s.labels[k] for k in agg.grouping if s.labels.get(k, "") != ""}
            key = tuple(sorted(labels.items()))
            groups.setdefault(key, (labels, []))[1].append(s.value)
        out = []
        for labels, values in groups.values():
            out.append(Sample(labels, _AGGREGATE[agg.op](values)))
        return out

    # -- binary operators ----------------------------------------------------------------

    def binary(self, b: Binary) -> Value:
        lhs = self.eval(b.lhs)
        rhs = self.eval(b.rhs)
        if isinstance(lhs, float) and isinstance(rhs, float):
            if b.is_comparison:
                return 1.0 if _CMP[b.op](lhs, rhs) else 0.0
            return _ARITH[b.op](lhs, rhs)
        if isinstance(lhs, list) and isinstance(rhs, list):
            return self.vector_vector(b, lhs, rhs)
        if isinstance(lhs, list):
            assert isinstance(rhs, float)
            return self.vector_scalar(b, lhs, rhs, scalar_left=False)
        assert isinstance(rhs, list) and isinstance(lhs, float)
        return self.vector_scalar(b, rhs, lhs, scalar_left=True)

    def vector_scalar(self, b: Binary, vec: Vector, scalar: float, *, scalar_left: bool) -> Vector:
        out = []
        for s in vec:
            a, c = (scalar, s.value) if scalar_left else (s.value, scalar)
            if b.is_comparison:
                hit = _CMP[b.op](a, c)
                if b.return_bool:
                    out.append(Sample(_drop_name(s.labels), 1.0 if hit else 0.0))
                elif hit:
                    out.append(s)  # filtering keeps the vector's own sample, name included
            else:
                out.append(Sample(_drop_name(s.labels), _ARITH[b.op](a, c)))
        return out

    def vector_vector(self, b: Binary, lhs: Vector, rhs: Vector) -> Vector:
        matching = b.matching or VectorMatching()
        if b.is_set_operator:
            return set_operation(b.op, matching, lhs, rhs)
        try:
            pairs = match_pairs(b.op, matching, lhs, rhs)
        except MatchingError as exc:
            raise EvaluationError(str(exc)) from exc
        out = []
        for left, right, labels in pairs:
            if b.is_comparison:
                hit = _CMP[b.op](left.value, right.value)
                if b.return_bool:
                    labels.pop(NAME_LABEL, None)
                    out.append(Sample(labels, 1.0 if hit else 0.0))
                elif hit:
                    # Filtering keeps the left-hand value (Prometheus: even under group_right).
                    out.append(Sample(labels, left.value))
            else:
                out.append(Sample(labels, _ARITH[b.op](left.value, right.value)))
        return out


class EvaluationError(RuntimeError):
    """An expression that parsed cannot be evaluated on this data (duplicate label sets on
    one side of a one-to-one match): a property of the data, reported per evaluation."""
