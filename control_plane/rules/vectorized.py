"""Range queries as column operations (numpy) for the shapes dashboards ask most; pure.

A range query's common expressions are a vector selector, ``rate``/``increase``/``delta`` over
a range selector, and ``sum``/``avg``/``min``/``max``/``count`` of those by labels. For these,
every step is computed at once per series (window edges by ``searchsorted``, Prometheus's
``extrapolatedRate`` over arrays) and aggregations are column reductions across series, instead
of evaluating the tree once per step. Anything else gives None and the caller takes the per-step
path (:mod:`.range_eval`), whose answers these equal (window edges with the same float
arithmetic; sums within float rounding; a window holding a counter reset is computed by the
scalar function itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from control_plane.rules.aggregations import group_labels
from control_plane.rules.ast import Aggregate, Call, Expr, MatrixSelector, VectorSelector
from control_plane.rules.evaluator import _EDGE_S, SeriesSource, series_labels
from control_plane.rules.functions import extrapolated_rate, mean
from control_plane.rules.staleness import _STALE_BITS
from control_plane.rules.values import NAME_LABEL

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Key = tuple[tuple[str, str], ...]

_RATES = frozenset({"rate", "increase", "delta"})
_AGGREGATIONS = frozenset({"sum", "avg", "min", "max", "count"})


@dataclass
class Columns:
    """Per result series (rows) its labels, and its value at every instant (columns) where
    ``present`` says it has one."""

    labels: list[dict[str, str]]
    values: Floats  # (series, instants)
    present: Mask

    def keys(self) -> list[Key]:
        return [tuple(sorted(labels.items())) for labels in self.labels]

    def series(
        self, instants: Sequence[float], check: Callable[[], None] | None = None
    ) -> dict[Key, tuple[dict[str, str], list[tuple[float, float]]]]:
        """As :func:`.range_eval.evaluate_steps` answers: per key its labels and points."""
        out = {}
        for key, labels, row, mask in zip(
            self.keys(), self.labels, self.values.tolist(), self.present.tolist(), strict=True
        ):
            if check is not None:
                check()
            pts = [(t, v) for t, v, here in zip(instants, row, mask, strict=True) if here]
            out[key] = (labels, pts)
        return out


def evaluate_columns(
    expr: Expr,
    source: SeriesSource,
    instants: Sequence[float],
    lookback_s: float,
    check: Callable[[], None] | None = None,
) -> Columns | None:
    """``expr`` at every instant as columns, or None when it is not a shape handled here."""
    at = np.asarray(instants, dtype=np.float64)
    leaf = _Leaf(source, at, lookback_s, check)
    found = leaf.evaluate(expr)
    if found is None:
        return None
    columns, drop = found
    if drop:
        columns.labels = [{k: v for k, v in la.items() if k != NAME_LABEL} for la in columns.labels]
    if len(set(columns.keys())) < len(columns.labels):
        return None  # two series differing only by name: the per-step path says where
    return columns


class _Leaf:
    def __init__(
        self,
        source: SeriesSource,
        instants: Floats,
        lookback_s: float,
        check: Callable[[], None] | None,
    ) -> None:
        self.source = source
        self.instants = instants
        self.lookback_s = lookback_s
        self.check = check

    def evaluate(self, expr: Expr) -> tuple[Columns, bool] | None:
        """Columns and whether the metric name is still to be dropped."""
        if isinstance(expr, VectorSelector) and expr.at is None:
            return self.selector(expr), False
        if (
            isinstance(expr, Call)
            and expr.func in _RATES
            and len(expr.args) == 1
            and isinstance(expr.args[0], MatrixSelector)
            and expr.args[0].selector.at is None
        ):
            return self.rate(expr.func, expr.args[0]), True
        if (
            isinstance(expr, Aggregate)
            and expr.op in _AGGREGATIONS
            and expr.param is None
            and not (NAME_LABEL in expr.grouping and not expr.without)
        ):
            inner = self.evaluate(expr.expr)
            return None if inner is None else (aggregate(expr, inner[0], self.check), False)
        return None

    def series(self, sel: VectorSelector) -> list[tuple[dict[str, str], Floats, Floats]]:
        out = []
        arrays = getattr(self.source, "arrays", None)
        for ref in self.source.select(sel.name, sel.matchers):
            if self.check is not None:
                self.check()
            if arrays is not None:
                times, values = arrays(ref.series_id)
            else:
                pts = self.source.points(ref.series_id, -np.inf, np.inf)
                times = np.array([p[0] for p in pts], dtype=np.float64)
                values = np.array([p[1] for p in pts], dtype=np.float64)
            if len(times):
                out.append((series_labels(ref), times, values))
        return out

    def selector(self, sel: VectorSelector) -> Columns:
        """Each instant's newest point within the lookback (a stale marker: absent)."""
        ends = self.instants - sel.offset_s
        highs = ends + _EDGE_S
        lows = ends - self.lookback_s + _EDGE_S
        labels, rows, masks = [], [], []
        for series_labels_, times, values in self.series(sel):
            newest = np.searchsorted(times, highs, side="right") - 1
            at = np.maximum(newest, 0)
            present = (newest >= 0) & (times[at] > lows) & ~_stale(values)[at]
            if present.any():
                labels.append(series_labels_)
                rows.append(values[at])
                masks.append(present)
        return _stack(labels, rows, masks, len(self.instants))

    def rate(self, func: str, ms: MatrixSelector) -> Columns:
        """Prometheus's ``extrapolatedRate`` at every instant (``extrapolated_rate``)."""
        ends = self.instants - ms.selector.offset_s
        starts = ends - ms.range_s
        highs = ends + _EDGE_S
        lows = starts + _EDGE_S
        counter = func != "delta"
        is_rate = func == "rate"
        labels, rows, masks = [], [], []
        for series_labels_, all_times, all_values in self.series(ms.selector):
            keep = ~_stale(all_values)
            times, values = all_times[keep], all_values[keep]
            first = np.searchsorted(times, lows, side="right")
            stop = np.searchsorted(times, highs, side="right")
            present = stop - first >= 2
            if not present.any():
                continue
            first = np.minimum(first, len(times) - 1)
            last = np.maximum(stop - 1, 0)
            value = _extrapolated(
                times, values, first, last, starts, ends, counter=counter, is_rate=is_rate
            )
            if counter:
                # Windows holding a reset (a point below the one before, both inside): the
                # scalar function, exactly; a dashboard's counters rarely reset.
                drops = np.zeros(len(values), dtype=np.int64)
                drops[1:] = values[1:] < values[:-1]
                resets = np.cumsum(drops)
                for i in np.flatnonzero(present & (resets[last] > resets[first])):
                    window = slice(first[i], last[i] + 1)
                    found = extrapolated_rate(
                        list(zip(times[window].tolist(), values[window].tolist(), strict=True)),
                        float(starts[i]),
                        float(ends[i]),
                        is_rate=is_rate,
                    )
                    value[i] = np.nan if found is None else found
            labels.append(series_labels_)
            rows.append(value)
            masks.append(present)
        return _stack(labels, rows, masks, len(self.instants))


def _extrapolated(
    times: Floats,
    values: Floats,
    first: npt.NDArray[np.intp],
    last: npt.NDArray[np.intp],
    starts: Floats,
    ends: Floats,
    *,
    counter: bool,
    is_rate: bool,
) -> Floats:
    """The steps of ``extrapolated_rate`` (no resets) over arrays, in its order of operations."""
    with np.errstate(all="ignore"):  # windows with fewer than 2 points are masked off
        first_t, first_v = times[first], values[first]
        last_t, last_v = times[last], values[last]
        result = last_v - first_v
        to_start = first_t - starts
        to_end = ends - last_t
        sampled = last_t - first_t
        average_step = sampled / (last - first)
        threshold = average_step * 1.1
        to_start = np.where(to_start >= threshold, average_step / 2, to_start)
        if counter:
            to_zero = sampled * (first_v / result)
            lower = (result > 0) & (first_v >= 0) & (to_zero < to_start)
            to_start = np.where(lower, to_zero, to_start)
        to_end = np.where(to_end >= threshold, average_step / 2, to_end)
        factor = (sampled + to_start + to_end) / sampled
        if is_rate:
            factor /= ends - starts
        out: Floats = result * factor
        return out


def aggregate(agg: Aggregate, inner: Columns, check: Callable[[], None] | None = None) -> Columns:
    """``sum``/``avg``/``min``/``max``/``count`` of the rows per group, at every column."""
    groups: dict[Key, list[int]] = {}
    labels_of: dict[Key, dict[str, str]] = {}
    for row, member_labels in enumerate(inner.labels):
        kept = group_labels(member_labels, agg.grouping, agg.without)
        key = tuple(sorted(kept.items()))
        groups.setdefault(key, []).append(row)
        labels_of.setdefault(key, kept)
    labels, rows, masks = [], [], []
    with np.errstate(all="ignore"):
        for key, members in groups.items():
            if check is not None:
                check()
            values, present = inner.values[members], inner.present[members]
            count = present.sum(axis=0)
            if agg.op == "count":
                value = count.astype(np.float64)
            elif agg.op == "sum":
                total, c, _ = _kahan_sum(values, present)
                value = np.where(np.isinf(total), total, total + c)
            elif agg.op == "avg":
                value = _mean(values, present, count)
            else:
                reduce = np.fmin if agg.op == "min" else np.fmax  # NaN only when all are
                value = reduce.reduce(np.where(present, values, np.nan), axis=0)
            labels.append(labels_of[key])
            rows.append(value)
            masks.append(count > 0)
    return _stack(labels, rows, masks, inner.values.shape[1])


def _kahan_sum(values: Floats, present: Mask) -> tuple[Floats, Floats, Mask]:
    """``kahan_inc`` over each column's present values (row by row, as the scalar one): the
    sum, its compensation, and where the running sum became infinite."""
    total = np.zeros(values.shape[1])
    c = np.zeros(values.shape[1])
    went_inf = np.zeros(values.shape[1], dtype=np.bool_)
    for row, here in zip(values, present, strict=True):
        inc = np.where(here, row, 0.0)  # adding 0 leaves both the sum and c as they are
        t = total + inc
        infinite = np.isinf(t)
        went_inf |= infinite & here
        bigger = np.abs(total) >= np.abs(inc)
        c = np.where(infinite, 0.0, c + np.where(bigger, (total - t) + inc, (inc - t) + total))
        total = t
    return total, c, went_inf


def _mean(values: Floats, present: Mask, count: npt.NDArray[np.int64]) -> Floats:
    """``mean`` per column: the Kahan sum over the count; where that sum overflowed, the
    scalar function's incremental mean."""
    total, c, went_inf = _kahan_sum(values, present)
    out: Floats = total / count + c / count
    for i in np.flatnonzero(went_inf):
        out[i] = mean([float(v) for v in values[present[:, i], i]])
    return out


def _stale(values: Floats) -> Mask:
    out: Mask = values.view(np.uint64) == _STALE_BITS
    return out


def _stack(
    labels: list[dict[str, str]], rows: list[Floats], masks: list[Mask], width: int
) -> Columns:
    if not rows:
        return Columns([], np.empty((0, width)), np.empty((0, width), dtype=np.bool_))
    return Columns(labels, np.vstack(rows), np.vstack(masks))
