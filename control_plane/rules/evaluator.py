"""Evaluating a parsed expression at one instant over the series windows; pure (the source of
points and the evaluation time are arguments).

Results (:mod:`.values`) are a scalar, a string, an instant vector of :class:`Sample` (labels
include ``__name__`` until a function, aggregation or arithmetic drops it, and ``agent`` for
the series' agent) or a range vector. Functions live in :mod:`.functions` (of ranges) and
:mod:`.vector_functions` (of samples), aggregations in :mod:`.aggregations`, operators in
:mod:`.operators`; :func:`evaluate_range` evaluates a range query (:mod:`.range_eval`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from control_plane.ingest.windows import SeriesRef
from control_plane.query.matchers import AGENT_LABEL, Matcher, MatchOp
from control_plane.rules.aggregations import (
    AggregationError,
    Grouping,
    aggregate_values,
    count_values,
    quantile,
    top_k,
)
from control_plane.rules.ast import (
    Aggregate,
    AtAnchor,
    Binary,
    Call,
    Expr,
    MatrixSelector,
    NumberLiteral,
    Precomputed,
    StringLiteral,
    Subquery,
    Unary,
    VectorSelector,
    children,
)
from control_plane.rules.catalog import DATE_FUNCTIONS, FUNCTIONS, KEEP_NAME, M
from control_plane.rules.functions import (
    OVER_TIME,
    Point,
    bucket_quantile,
    double_exponential_smoothing,
    extrapolated_rate,
    instant_change,
    linear_regression,
    timestamp_of,
)
from control_plane.rules.operators import binary
from control_plane.rules.staleness import is_stale
from control_plane.rules.values import (
    NAME_LABEL,
    EvaluationError,
    Labels,
    Matrix,
    RangeSeries,
    Sample,
    Value,
    Vector,
    as_vector,
    drop_name,
    dropped,
    finalize,
    sorted_by_value,
    unique,
)
from control_plane.rules.vector_functions import (
    ELEMENTWISE,
    LabelFunctionError,
    date_part,
    go_max,
    go_min,
    label_joiner,
    label_replacer,
    round_to,
    sort_by_label,
)

__all__ = [
    "DEFAULT_LOOKBACK_S",
    "DEFAULT_SUBQUERY_STEP_S",
    "NAME_LABEL",
    "EvaluationError",
    "Labels",
    "Matrix",
    "RangeSeries",
    "Sample",
    "SeriesSource",
    "Value",
    "Vector",
    "evaluate",
    "evaluate_range",
    "selector_names",
    "selectors",
    "series_labels",
    "uses_absent",
]

# How far back an instant selector looks for the latest point (Prometheus' default).
DEFAULT_LOOKBACK_S = 300.0
# The step of a subquery that names none (`x[1h:]`): Prometheus's default evaluation interval.
DEFAULT_SUBQUERY_STEP_S = 60.0
# Instants are floats of seconds, so `at - range` can land a hair off a stored instant. Both
# edges of `(start, end]` move by half a microsecond (PostgreSQL's resolution): a point exactly
# on an edge then falls on the side Prometheus's integer milliseconds put it.
_EDGE_S = 0.5e-6


_RANGE_FUNCTIONS = frozenset(name for name, sig in FUNCTIONS.items() if M in sig.args)


class SeriesSource(Protocol):
    """What the evaluator reads: the ingest windows (``SeriesWindows``) fit, and so does a
    store-backed source (the Prometheus HTTP API's)."""

    def select(self, name: str | None, matchers: Sequence[Matcher] = ()) -> list[SeriesRef]:
        """Series named ``name`` (any name when None; a selector's own ``__name__`` matchers
        are among ``matchers``) whose labels satisfy every matcher."""
        ...

    def points(self, series_id: int, start: float, end: float) -> list[Point]: ...


def evaluate(
    expr: Expr,
    source: SeriesSource,
    at: float,
    *,
    lookback_s: float = DEFAULT_LOOKBACK_S,
    start: float | None = None,
    end: float | None = None,
    step: float = 0.0,
) -> Value:
    """The value of ``expr`` at time ``at`` (seconds since the epoch). ``start``, ``end`` and
    ``step`` are those of the range query ``at`` belongs to (``@ start()``, ``step()``); an
    instant query's start and end are ``at`` itself, its step 0."""
    at = float(at)  # an int would not be told apart from a vector below
    evaluator = _Evaluator(
        source,
        at,
        lookback_s,
        _QueryRange(at if start is None else float(start), at if end is None else float(end), step),
    )
    return finalize(evaluator.eval(expr))


def evaluate_range(
    expr: Expr,
    source: SeriesSource,
    start: float,
    end: float,
    step: float,
    *,
    lookback_s: float = DEFAULT_LOOKBACK_S,
    check: Callable[[], None] | None = None,
) -> dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[Point]]]:
    """``expr`` at ``start``, ``start + step``, ... up to ``end``: per result label set (the
    key: its sorted items) the labels and the ``(t, value)`` points, oldest first. A scalar
    result is one series with no labels. ``check`` is called every few steps (a deadline may
    raise from it). Selectors and range functions are read once per series for all steps
    (:mod:`.range_eval`); the answer is what :func:`evaluate` gives at each step."""
    from control_plane.rules.range_eval import evaluate_steps  # (a cycle: it imports us)

    if step <= 0:
        raise ValueError("step must be positive")
    n = int((end - start) // step) if end >= start else -1
    instants = [start + i * step for i in range(n + 1)]
    return evaluate_steps(expr, source, instants, lookback_s=lookback_s, step=step, check=check)


def series_labels(ref: SeriesRef) -> dict[str, str]:
    labels = dict(ref.labels)
    labels[AGENT_LABEL] = ref.agent_id
    labels[NAME_LABEL] = ref.name
    return labels


def selectors(expr: Expr) -> list[VectorSelector]:
    """Every vector selector in ``expr`` (those inside range selectors and subqueries too)."""
    if isinstance(expr, VectorSelector):
        return [expr]
    return [sel for child in children(expr) for sel in selectors(child)]


def selector_names(expr: Expr) -> set[str]:
    """Metric names an expression reads (the series the incident page graphs). A selector
    without a name contributes its `__name__="x"` matcher's name, or nothing: it may read
    any metric, which no finite set of names can say."""
    names = set()
    for sel in selectors(expr):
        if sel.name is not None:
            names.add(sel.name)
        else:
            names.update(
                m.value for m in sel.matchers if m.label == NAME_LABEL and m.op is MatchOp.EQ
            )
    return names


def uses_absent(expr: Expr) -> bool:
    """Does ``expr`` answer for missing series (``absent``, ``absent_over_time``)? Such a rule
    waits for the windows to warm up before it may fire."""
    if isinstance(expr, Call) and expr.func in ("absent", "absent_over_time"):
        return True
    return any(uses_absent(child) for child in children(expr))


def _absent_labels(arg: Expr) -> dict[str, str]:
    """Prometheus's ``createLabelsForAbsentFunction``: the labels the missing series would
    have had from the selector's equality matchers; a label matched more than once (or by a
    later non-equality matcher) is left out."""
    sel = arg.selector if isinstance(arg, MatrixSelector) else arg
    if not isinstance(sel, VectorSelector):
        return {}
    labels: dict[str, str] = {}
    seen: set[str] = set()
    for m in sel.matchers:
        if m.label == NAME_LABEL:
            continue
        if m.op is MatchOp.EQ and m.label not in seen:
            labels[m.label] = m.value
            seen.add(m.label)
        else:
            labels.pop(m.label, None)
    return labels


@dataclass(frozen=True, slots=True)
class _QueryRange:
    """The query an evaluation belongs to: for `@ start()`, `end()`, `range()`, `step()`;
    and what its steps share: each aggregation's grouping and each subquery's inner values (by
    the node's id; the tree is held by the caller for the query's life)."""

    start: float
    end: float
    step: float
    groupings: dict[int, Grouping] = field(default_factory=dict, compare=False)
    # Each subquery's inner vectors by step (ms), while its window holds them.
    subquery_steps: dict[int, dict[int, Vector]] = field(default_factory=dict, compare=False)


class _Evaluator:
    def __init__(
        self, source: SeriesSource, at: float, lookback_s: float, query: _QueryRange
    ) -> None:
        self.source = source
        self.at = at
        self.lookback_s = lookback_s
        self.query = query

    def at_time(self, at: float) -> _Evaluator:
        return _Evaluator(self.source, at, self.lookback_s, self.query)

    def eval(self, expr: Expr) -> Value:
        if isinstance(expr, NumberLiteral):
            return expr.value
        if isinstance(expr, StringLiteral):
            return expr.value
        if isinstance(expr, VectorSelector):
            return self.instant(expr)
        if isinstance(expr, Precomputed):
            vector: Vector = expr.by_time[self.at]
            return vector
        if isinstance(expr, MatrixSelector | Subquery):
            rows = self.ranges(expr)
            return tuple(
                RangeSeries(drop_name(labels) if drop else labels, pts)
                for labels, pts, _, _, drop in rows
            )
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
            return unique([dropped(s.labels, -s.value) for s in as_vector(inner)])
        return self.binary(expr)

    def scalar(self, expr: Expr) -> float:
        value = self.eval(expr)
        assert isinstance(value, float)
        return value

    def vector(self, expr: Expr) -> Vector:
        return as_vector(self.eval(expr))

    # -- selectors -----------------------------------------------------------------------

    def time_of(self, at: float | AtAnchor | None, offset_s: float) -> float:
        """When a selector or subquery reads: its `@` time (or the evaluation time), minus
        its offset."""
        if at is None:
            base = self.at
        elif at is AtAnchor.START:
            base = self.query.start
        elif at is AtAnchor.END:
            base = self.query.end
        else:
            base = float(at)
        return base - offset_s

    def latest(self, sel: VectorSelector) -> list[tuple[SeriesRef, Point]]:
        """Each matching series' newest point within the lookback (none if it is stale)."""
        end = self.time_of(sel.at, sel.offset_s)
        out = []
        for ref in self.source.select(sel.name, sel.matchers):
            pts = self.source.points(ref.series_id, end - self.lookback_s + _EDGE_S, end + _EDGE_S)
            if pts and not is_stale(pts[-1][1]):
                out.append((ref, pts[-1]))
        return out

    def instant(self, sel: VectorSelector) -> Vector:
        return [Sample(series_labels(ref), point[1]) for ref, point in self.latest(sel)]

    def ranges(self, expr: Expr) -> list[tuple[Labels, list[Point], float, float, bool]]:
        """A range vector's series: (labels, points, range start, range end)."""
        if isinstance(expr, Subquery):
            return self.subquery(expr)
        assert isinstance(expr, MatrixSelector)
        sel = expr.selector
        end = self.time_of(sel.at, sel.offset_s)
        start = end - expr.range_s
        out: list[tuple[Labels, list[Point], float, float, bool]] = []
        for ref in self.source.select(sel.name, sel.matchers):
            pts = self.source.points(ref.series_id, start + _EDGE_S, end + _EDGE_S)
            pts = [p for p in pts if not is_stale(p[1])]
            if pts:
                out.append((series_labels(ref), pts, start, end, False))
        return out

    def subquery(self, sq: Subquery) -> list[tuple[Labels, list[Point], float, float, bool]]:
        """The inner expression at every multiple of the step in (end - range, end], as
        Prometheus aligns subquery steps (to absolute time, whatever the evaluation time)."""
        end_ms = round(self.time_of(sq.at, sq.offset_s) * 1000)
        range_ms = round(sq.range_s * 1000)
        step_ms = round((sq.step_s or DEFAULT_SUBQUERY_STEP_S) * 1000)
        first = step_ms * ((end_ms - range_ms) // step_ms)
        if first <= end_ms - range_ms:
            first += step_ms
        # The inner value at a step depends on that time only: the steps of a range query
        # share them (a window moves on by one step or so), the older ones let go.
        held = self.query.subquery_steps.setdefault(id(sq), {})
        while held and next(iter(held)) < first:
            del held[next(iter(held))]
        series: dict[tuple[tuple[str, str], ...], tuple[Labels, list[Point], bool]] = {}
        for t_ms in range(first, end_ms + 1, step_ms):
            t = t_ms / 1000
            vector = held.get(t_ms)
            if vector is None:
                vector = held[t_ms] = self.at_time(t).vector(sq.expr)
            for s in vector:
                key = tuple(sorted(s.labels.items()))
                series.setdefault(key, (s.labels, [], s.drop_name))[1].append((t, s.value))
        start, end = (end_ms - range_ms) / 1000, end_ms / 1000
        return [(labels, pts, start, end, drop) for labels, pts, drop in series.values()]

    # -- functions -----------------------------------------------------------------------

    def call(self, call: Call) -> Value:
        func, args = call.func, call.args
        if func in _RANGE_FUNCTIONS:
            return unique(self.range_function(call))
        if func == "absent":
            return [] if self.vector(args[0]) else [Sample(_absent_labels(args[0]), 1.0)]
        if func == "histogram_quantile":
            return unique(self.histogram_quantile(call))
        if func == "time":
            return self.at
        if func == "pi":
            return math.pi
        if func in ("start", "end", "step"):
            return float(getattr(self.query, func))
        if func == "range":
            return self.query.end - self.query.start
        if func == "scalar":
            vec = self.vector(args[0])
            return vec[0].value if len(vec) == 1 else math.nan
        if func == "vector":
            return [Sample({}, self.scalar(args[0]))]
        if func == "timestamp":
            return unique(self.timestamp(args[0]))
        if func in DATE_FUNCTIONS:
            if not args:
                return [Sample({}, date_part(func, self.at))]
            vec = self.vector(args[0])
            return unique([dropped(s.labels, date_part(func, s.value)) for s in vec])
        return self.vector_function(call)

    def vector_function(self, call: Call) -> Vector:
        func, args = call.func, call.args
        vec = self.vector(args[0])
        if func in ("sort", "sort_desc"):
            return sorted_by_value(vec, descending=func == "sort_desc")
        if func in ("sort_by_label", "sort_by_label_desc"):
            names = [a.value for a in args[1:] if isinstance(a, StringLiteral)]
            return sort_by_label(vec, names, descending=func == "sort_by_label_desc")
        if func in ("label_replace", "label_join"):
            dst, *rest = [a.value for a in args[1:] if isinstance(a, StringLiteral)]
            try:
                if func == "label_replace":
                    relabel = label_replacer(dst, *rest)
                else:
                    relabel = label_joiner(dst, rest[0], tuple(rest[1:]))
            except LabelFunctionError as exc:
                raise EvaluationError(str(exc)) from exc
            # Writing `__name__` keeps the name that was to go.
            keeps_name = dst == NAME_LABEL
            return unique(
                [Sample(relabel(s.labels), s.value, s.drop_name and not keeps_name) for s in vec]
            )
        return unique([dropped(s.labels, v) for s, v in self.mapped(call, vec)])

    def mapped(self, call: Call, vec: Vector) -> list[tuple[Sample, float]]:
        func, args = call.func, call.args
        if func in ELEMENTWISE:
            fn = ELEMENTWISE[func]
            return [(s, fn(s.value)) for s in vec]
        if func == "round":
            to = self.scalar(args[1]) if len(args) > 1 else 1.0
            return [(s, round_to(s.value, to)) for s in vec]
        if func == "clamp":
            low, high = self.scalar(args[1]), self.scalar(args[2])
            if high < low:
                return []
            return [(s, go_max(low, go_min(high, s.value))) for s in vec]
        bound = self.scalar(args[1])
        pick = go_max if func == "clamp_min" else go_min
        return [(s, pick(bound, s.value)) for s in vec]

    def timestamp(self, arg: Expr) -> Vector:
        if isinstance(arg, VectorSelector):
            # Of a selector: when its sample was taken (else the evaluation time).
            return [
                dropped(series_labels(ref), round(t * 1000) / 1000)
                for ref, (t, _) in self.latest(arg)
            ]
        return [dropped(s.labels, self.at) for s in self.vector(arg)]

    def range_function(self, call: Call) -> Vector:
        func, args = call.func, call.args
        index = 1 if func == "quantile_over_time" else 0
        rows = self.ranges(args[index])
        if func == "absent_over_time":
            return [] if rows else [Sample(_absent_labels(args[index]), 1.0)]
        out = []
        for labels, pts, start, end, drop in rows:
            value = self.range_value(call, pts, start, end)
            if value is not None:
                keep = func in KEEP_NAME and not drop
                out.append(Sample(labels, value) if keep else dropped(labels, value))
        return out

    def range_value(self, call: Call, pts: list[Point], start: float, end: float) -> float | None:
        func = call.func
        if func in ("rate", "increase", "delta"):
            return extrapolated_rate(
                pts, start, end, is_rate=func == "rate", is_counter=func != "delta"
            )
        if func in ("irate", "idelta"):
            return instant_change(pts, is_rate=func == "irate")
        if func.startswith("ts_of_"):
            return round(timestamp_of(pts, func.split("_")[2]) * 1000) / 1000
        if func == "double_exponential_smoothing":
            sf, tf = self.scalar(call.args[1]), self.scalar(call.args[2])
            for name, factor in (("smoothing", sf), ("trend", tf)):
                if not 0 < factor < 1:
                    raise EvaluationError(
                        f"invalid {name} factor. Expected: 0 < {name[0]}f < 1, got: {factor}"
                    )
            return double_exponential_smoothing([v for _, v in pts], sf, tf)
        if func == "deriv":
            return linear_regression(pts, pts[0][0])[0] if len(pts) > 1 else None
        if func == "predict_linear":
            if len(pts) < 2:
                return None
            slope, intercept = linear_regression(pts, self.at)
            return slope * self.scalar(call.args[1]) + intercept
        values = [v for _, v in pts]
        if func == "quantile_over_time":
            return quantile(self.scalar(call.args[0]), values)
        return OVER_TIME[func](values)

    def histogram_quantile(self, call: Call) -> Vector:
        q = self.scalar(call.args[0])
        vec = self.vector(call.args[1])
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
        param: float | str = 0.0
        if agg.param is not None:
            value = self.eval(agg.param)
            assert isinstance(value, float | str)
            param = value
        inner = self.vector(agg.expr)
        grouping = self.query.groupings.get(id(agg))
        if grouping is None:
            grouping = self.query.groupings[id(agg)] = Grouping(agg.grouping, agg.without)
        try:
            if agg.op in ("topk", "bottomk"):
                assert isinstance(param, float)
                return top_k(agg.op, param, inner, grouping)
            if agg.op == "count_values":
                assert isinstance(param, str)
                rows = count_values(param, inner, agg.grouping, agg.without)
            else:
                assert isinstance(param, float)
                rows = aggregate_values(agg.op, inner, grouping, param)
        except AggregationError as exc:
            raise EvaluationError(str(exc)) from exc
        return [Sample(labels, value, drop) for labels, value, drop in rows]

    def binary(self, b: Binary) -> Value:
        return binary(b, self.eval(b.lhs), self.eval(b.rhs))
