"""Range queries: an expression at every instant of ``start, start + step, ... end``; pure.

Evaluating each instant on its own selects the series and reads their points once per step,
which dominates a dashboard's query (24 h at 15 s is 5,760 steps). Here the costly leaves, the
vector selectors and the range functions over a range selector, are read once per series for
all steps and replaced by their precomputed vectors (:class:`Precomputed`); the rest of the
tree (aggregations, operators, other functions) is then evaluated per step over those, by the
same evaluator, so each step's answer is exactly what :func:`evaluate` gives. Leaves pinned by
`@`, those inside subqueries (evaluated at the subquery's own steps) and the selectors that
`timestamp()` and `absent()` read themselves are left to the per-step evaluator.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import replace

from control_plane.rules.ast import (
    Aggregate,
    Binary,
    Call,
    Expr,
    MatrixSelector,
    Precomputed,
    Unary,
    VectorSelector,
)
from control_plane.rules.catalog import KEEP_NAME
from control_plane.rules.evaluator import (
    _EDGE_S,
    _RANGE_FUNCTIONS,
    SeriesSource,
    _Evaluator,
    _QueryRange,
    series_labels,
)
from control_plane.rules.functions import Point, extrapolated_rate
from control_plane.rules.staleness import is_stale
from control_plane.rules.values import (
    EvaluationError,
    Labels,
    Sample,
    Vector,
    drop_name,
    dropped,
)
from control_plane.rules.vectorized import evaluate_columns

# Range functions whose only argument is the range (the others take a scalar that may vary
# by step, or, like absent_over_time, read the selector itself).
_ONE_PASS = _RANGE_FUNCTIONS - {
    "quantile_over_time",
    "predict_linear",
    "double_exponential_smoothing",
    "absent_over_time",
}
# Steps evaluated between two calls of the caller's check (its deadline).
_CHECK_EVERY = 64

Key = tuple[tuple[str, str], ...]
Series = dict[Key, tuple[dict[str, str], list[Point]]]


def evaluate_steps(
    expr: Expr,
    source: SeriesSource,
    instants: Sequence[float],
    *,
    lookback_s: float,
    step: float,
    check: Callable[[], None] | None = None,
) -> Series:
    """``expr`` at each of ``instants`` (ascending): per label set its labels and points."""
    out: Series = {}
    if not instants:
        return out
    columns = evaluate_columns(expr, source, instants, lookback_s, check)
    if columns is not None:  # the common shapes, as column operations over all steps
        return columns.series(instants, check)
    query = _QueryRange(instants[0], instants[-1], step)
    prepared = _Leaves(source, instants, lookback_s, query, check).rewrite(expr)
    # A precomputed series shares one labels mapping over all steps: its result labels are
    # worked out once (the mapping is held too, so its id is not reused).
    keys: dict[tuple[int, bool], tuple[Labels, Key]] = {}
    for i, t in enumerate(instants):
        if check is not None and i % _CHECK_EVERY == 0:
            check()
        value = _Evaluator(source, t, lookback_s, query).eval(prepared)
        if isinstance(value, str | tuple):
            raise EvaluationError("a range query needs a scalar or instant vector expression")
        samples = [Sample({}, value)] if isinstance(value, float) else value
        dropped = False
        step_keys = []
        for s in samples:
            memo = keys.get((id(s.labels), s.drop_name))
            if memo is None or memo[0] is not s.labels:
                labels = drop_name(s.labels) if s.drop_name else s.labels
                memo = keys[(id(s.labels), s.drop_name)] = (s.labels, _key(labels))
            dropped = dropped or s.drop_name
            step_keys.append(memo[1])
        if dropped and len(set(step_keys)) < len(step_keys):
            # What _finalize refuses at an instant.
            raise EvaluationError("vector cannot contain metrics with the same labelset")
        for s, key in zip(samples, step_keys, strict=True):
            held = out.get(key)
            if held is None:
                held = out[key] = (dict(key), [])
            held[1].append((t, s.value))
    return out


def _key(labels: Labels) -> Key:
    return tuple(sorted(labels.items()))


class _Leaves:
    def __init__(
        self,
        source: SeriesSource,
        instants: Sequence[float],
        lookback_s: float,
        query: _QueryRange,
        check: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.check = check
        self.instants = [float(t) for t in instants]
        self.lookback_s = lookback_s
        self.evaluator = _Evaluator(source, self.instants[0], lookback_s, query)

    def rewrite(self, expr: Expr) -> Expr:
        if isinstance(expr, VectorSelector) and expr.at is None:
            return Precomputed(self.selector(expr), expr.pos)
        if isinstance(expr, Call):
            arg = expr.args[0] if expr.args else None
            if (
                expr.func in _ONE_PASS
                and isinstance(arg, MatrixSelector)
                and arg.selector.at is None
            ):
                return Precomputed(self.range_function(expr, arg), expr.pos)
            keep_selectors = expr.func in ("timestamp", "absent")
            args = tuple(
                a if keep_selectors and isinstance(a, VectorSelector) else self.rewrite(a)
                for a in expr.args
            )
            return replace(expr, args=args)
        if isinstance(expr, Aggregate):
            param = None if expr.param is None else self.rewrite(expr.param)
            return replace(expr, expr=self.rewrite(expr.expr), param=param)
        if isinstance(expr, Unary):
            return replace(expr, expr=self.rewrite(expr.expr))
        if isinstance(expr, Binary):
            return replace(expr, lhs=self.rewrite(expr.lhs), rhs=self.rewrite(expr.rhs))
        return expr  # literals, subqueries, range selectors of other functions, `@` leaves

    def selector(self, sel: VectorSelector) -> dict[float, Vector]:
        """Each instant's vector of ``sel``: every series' newest point in the lookback
        (as :meth:`_Evaluator.latest`, series in the same order)."""
        instants, lookback, offset = self.instants, self.lookback_s, sel.offset_s
        vectors: list[Vector] = [[] for _ in instants]
        # The same float arithmetic as the per-step evaluator, so edges fall alike.
        ends = [t - offset for t in instants]
        highs = [end + _EDGE_S for end in ends]
        lows = [end - lookback + _EDGE_S for end in ends]
        for ref in self.source.select(sel.name, sel.matchers):
            if self.check is not None:
                self.check()
            pts = self.source.points(ref.series_id, lows[0], highs[-1])
            if not pts:
                continue
            times = [p[0] for p in pts]
            values = [p[1] for p in pts]
            labels = series_labels(ref)
            newest = [bisect_right(times, high) - 1 for high in highs]
            for vector, j, low in zip(vectors, newest, lows, strict=True):
                if j >= 0 and times[j] > low:
                    value = values[j]
                    if value == value or not is_stale(value):  # (NaN: maybe the marker)
                        vector.append(Sample(labels, value))
        return dict(zip(instants, vectors, strict=True))

    def range_function(self, call: Call, ms: MatrixSelector) -> dict[float, Vector]:
        """Each instant's vector of ``func(sel[range])`` (as :meth:`_Evaluator.ranges` and
        :meth:`_Evaluator.range_function`)."""
        instants, offset, range_s = self.instants, ms.selector.offset_s, ms.range_s
        vectors: list[Vector] = [[] for _ in instants]
        ends = [t - offset for t in instants]
        starts = [end - range_s for end in ends]
        highs = [end + _EDGE_S for end in ends]
        lows = [start + _EDGE_S for start in starts]
        keep = call.func in KEEP_NAME
        counter = call.func in ("rate", "increase")
        is_rate = call.func == "rate"
        range_value = self.evaluator.range_value
        for ref in self.source.select(ms.selector.name, ms.selector.matchers):
            if self.check is not None:
                self.check()
            pts = self.source.points(ref.series_id, lows[0], highs[-1])
            pts = [p for p in pts if p[1] == p[1] or not is_stale(p[1])]
            if not pts:
                continue
            times = [p[0] for p in pts]
            labels = series_labels(ref)
            # Where the counter resets (a point below the one before), found once.
            drops = [k for k in range(1, len(pts)) if pts[k][1] < pts[k - 1][1]]
            firsts = [bisect_right(times, low) for low in lows]
            lasts = [bisect_right(times, high) for high in highs]
            for vector, a, b, start, end in zip(vectors, firsts, lasts, starts, ends, strict=True):
                if a >= b:
                    continue
                if counter:
                    # Resets inside the window: a point and the one before it both in it.
                    inside = drops[bisect_right(drops, a) : bisect_left(drops, b)]
                    value = extrapolated_rate(
                        pts[a:b],
                        start,
                        end,
                        is_rate=is_rate,
                        resets=[pts[k - 1][1] for k in inside],
                    )
                else:
                    value = range_value(call, pts[a:b], start, end)
                if value is not None:
                    vector.append(Sample(labels, value) if keep else dropped(labels, value))
        return dict(zip(instants, vectors, strict=True))
