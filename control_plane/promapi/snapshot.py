"""The points one query reads, held in memory: a :class:`SeriesSource` for the evaluator; pure.

A query first works out which selectors it has and how far before each evaluation instant
they read (:func:`selector_needs`), loads exactly those points once (from PostgreSQL or the
ingest windows, :mod:`.loader`), then evaluates every step over this snapshot. Evaluation can
then run off the event loop: nothing here changes while it runs.
"""

from __future__ import annotations

import dataclasses
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from control_plane.ingest.windows import SeriesRef
from control_plane.query.matchers import Matcher, matches_all
from control_plane.rules.ast import Expr, MatrixSelector, VectorSelector

NAME_LABEL = "__name__"
Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class SelectorNeed:
    """A selector and the span its points are read from: ``(t - offset - before_s,
    t - offset]`` around each evaluation instant ``t`` (or the ``@`` time pinning it)."""

    selector: VectorSelector
    before_s: float
    offset_s: float = 0.0
    # ``@ <time>`` or ``@ start()``/``@ end()`` on the selector or a subquery around it.
    at: float | str | None = None

    def span(self, start: float, end: float) -> tuple[float, float]:
        if self.at is None:
            lo, hi = start, end
        elif isinstance(self.at, float | int):
            lo = hi = float(self.at)
        else:
            lo = hi = start if self.at == "start" else end
        return lo - self.offset_s - self.before_s, hi - self.offset_s


def selector_needs(expr: Expr, lookback_s: float) -> list[SelectorNeed]:
    return list(_walk(expr, lookback_s, 0.0, 0.0, None))


def _walk(
    node: object, lookback_s: float, outer_s: float, offset_s: float, at: float | str | None
) -> Iterator[SelectorNeed]:
    if isinstance(node, tuple):
        for item in node:
            yield from _walk(item, lookback_s, outer_s, offset_s, at)
        return
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return
    # Selectors and subqueries carry an offset and an `@`; a subquery's own range reaches
    # further back for everything inside it.
    offset_s += float(getattr(node, "offset_s", 0.0) or 0.0)
    own_at = getattr(node, "at", None)
    at = at if own_at is None else own_at
    if isinstance(node, MatrixSelector):
        sel = node.selector
        sel_at = at if sel.at is None else sel.at
        yield SelectorNeed(sel, outer_s + node.range_s, offset_s + sel.offset_s, sel_at)
        return
    if isinstance(node, VectorSelector):
        yield SelectorNeed(node, outer_s + lookback_s, offset_s, at)
        return
    outer_s += float(getattr(node, "range_s", 0.0) or 0.0)
    for f in dataclasses.fields(node):
        yield from _walk(getattr(node, f.name), lookback_s, outer_s, offset_s, at)


class Snapshot:
    """Series and their points, bounded by the caller (``points_held`` counts them)."""

    def __init__(self) -> None:
        self._refs: dict[int, SeriesRef] = {}
        self._times: dict[int, array[float]] = {}
        self._values: dict[int, array[float]] = {}
        self._by_name: dict[str, list[int]] = {}
        self._selected: dict[tuple[str | None, tuple[Matcher, ...]], list[SeriesRef]] = {}
        self._pairs: dict[int, list[Point]] = {}
        self.points_held = 0

    def __len__(self) -> int:
        return len(self._refs)

    def add(self, ref: SeriesRef, times: Sequence[float], values: Sequence[float]) -> None:
        """One series' points, ascending. A series met again (two selectors) keeps the union."""
        sid = ref.series_id
        held = self._times.get(sid)
        new_times, new_values = _ascending(array("d", times), array("d", values))
        if held is None:
            self._refs[sid] = ref
            self._by_name.setdefault(ref.name, []).append(sid)
            self._times[sid] = new_times
            self._values[sid] = new_values
            self.points_held += len(new_times)
            self._selected.clear()  # a new series may match selections made before
            return
        merged = dict(zip(held, self._values[sid], strict=True))
        merged.update(zip(new_times, new_values, strict=True))
        order = sorted(merged)
        self.points_held += len(order) - len(held)
        self._times[sid] = array("d", order)
        self._values[sid] = array("d", (merged[t] for t in order))
        self._pairs.pop(sid, None)

    def select(self, name: str | None, matchers: Sequence[Matcher] = ()) -> list[SeriesRef]:
        key = (name or None, tuple(matchers))
        found = self._selected.get(key)
        if found is None:
            found = self._selected[key] = self._select(name, matchers)
        return found

    def _select(self, name: str | None, matchers: Sequence[Matcher]) -> list[SeriesRef]:
        ids = self._by_name.get(name, []) if name else list(self._refs)
        on_name = [m for m in matchers if m.label == NAME_LABEL]
        on_labels = [m for m in matchers if m.label != NAME_LABEL]
        out = []
        for sid in ids:
            ref = self._refs[sid]
            if all(m.matches(ref.name) for m in on_name) and matches_all(
                on_labels, ref.agent_id, ref.labels
            ):
                out.append(ref)
        return out

    def arrays(self, series_id: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """All of a series' times and values as numpy arrays (views, no copy)."""
        times = self._times.get(series_id)
        if not times:
            return np.empty(0), np.empty(0)
        return np.frombuffer(times), np.frombuffer(self._values[series_id])

    def points(self, series_id: int, start: float, end: float) -> list[Point]:
        """Points with ``start < ts <= end``, oldest first."""
        times = self._times.get(series_id)
        if times is None:
            return []
        lo = bisect_right(times, start)
        hi = bisect_right(times, end, lo)
        # A range query asks this for every series at every step: the pairs are built once
        # and sliced (a C-level copy) rather than zipped again each time.
        pairs = self._pairs.get(series_id)
        if pairs is None:
            pairs = self._pairs[series_id] = list(zip(times, self._values[series_id], strict=True))
        return pairs[lo:hi]


def _ascending(times: array[float], values: array[float]) -> tuple[array[float], array[float]]:
    """The points by time (the loader's rows come ordered; a check costs little), one a time."""
    if len(times) < 2:
        return times, values
    view = np.frombuffer(times)
    if (view[1:] > view[:-1]).all():
        return times, values
    by_time = dict(zip(times, values, strict=True))
    order = sorted(by_time)
    return array("d", order), array("d", (by_time[t] for t in order))
