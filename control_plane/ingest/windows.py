"""The recent in-memory window of every series, for the rule evaluator; pure (the clock is an
argument).

Only samples whose report has been durably committed are added (the writer calls :meth:`add`
after COMMIT and never for duplicate reports), so what the evaluator sees is exactly what a
query of the database would return for the same span.

Each window holds two ``array('d')`` (16 bytes a point rather than ~100 for tuples), bounded by
``window_seconds`` and ``max_points``; samples usually arrive in time order so adding is an
append, and late ones (a replayed spool) are inserted in place.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from control_plane.query.matchers import Matcher, matches_all

Point = tuple[float, float]
NAME_LABEL = "__name__"


@dataclass(frozen=True, slots=True)
class SeriesRef:
    """A stored series: what a window is keyed by and what a selector returns."""

    series_id: int
    agent_id: str
    name: str
    labels: Mapping[str, str]


class _Window:
    __slots__ = ("head", "ref", "ts", "values")

    def __init__(self, ref: SeriesRef) -> None:
        self.ref = ref
        self.ts = array("d")
        self.values = array("d")
        # Points before `head` are expired; they are cut off in bulk, not one by one.
        self.head = 0

    def insert(self, ts: float, value: float, *, replace: bool = True) -> bool:
        """Adds the point; False when the instant was already held (its value is then replaced,
        unless ``replace`` is false: merge semantics, the held point wins)."""
        times = self.ts
        if len(times) == self.head or ts > times[-1]:
            times.append(ts)
            self.values.append(value)
            return True
        i = bisect_left(times, ts, self.head)
        if i < len(times) and times[i] == ts:
            if replace:
                self.values[i] = value  # same instant twice: the later write wins
            return False
        times.insert(i, ts)
        self.values.insert(i, value)
        return True

    def trim(self, cutoff: float, max_points: int) -> None:
        times = self.ts
        n = len(times)
        head = self.head
        if head < n and times[head] < cutoff:
            head = bisect_left(times, cutoff, head)
        head = max(head, n - max_points)
        if head >= 64 and head * 2 >= n:
            del times[:head]
            del self.values[:head]
            head = 0
        self.head = head

    def __len__(self) -> int:
        return len(self.ts) - self.head

    def newest(self) -> float | None:
        return self.ts[-1] if len(self.ts) > self.head else None

    def between(self, start: float, end: float) -> list[Point]:
        """Points with ``start < ts <= end`` (Prometheus range-selector semantics)."""
        lo = bisect_right(self.ts, start, self.head)
        hi = bisect_right(self.ts, end, lo)
        return list(zip(self.ts[lo:hi], self.values[lo:hi], strict=True))


class SeriesWindows:
    def __init__(self, *, window_seconds: float, max_points: int) -> None:
        self.window_seconds = window_seconds
        self.max_points = max_points
        self._windows: dict[int, _Window] = {}
        self._by_name: dict[str, dict[int, _Window]] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def add(
        self,
        samples: Iterable[tuple[SeriesRef, float, float]],
        now: float,
        *,
        replace: bool = True,
    ) -> int:
        """Add committed samples ``(series, ts, value)``; those already older than the window
        are skipped. Returns how many were added. With ``replace`` false a point at an instant
        already held is skipped (the semantics of :meth:`merge`: adding the same samples twice,
        in any order, leaves the window as adding them once)."""
        cutoff = now - self.window_seconds
        windows = self._windows
        touched: dict[int, _Window] = {}
        added = 0
        max_points = self.max_points
        for ref, ts, value in samples:
            if ts < cutoff:
                continue
            sid = ref.series_id
            w = windows.get(sid)
            if w is None:
                w = self._create(ref)
            times = w.ts
            # In-order samples (nearly all) are two appends; late ones go through insert().
            if len(times) == w.head or ts > times[-1]:
                times.append(ts)
                w.values.append(value)
            elif not w.insert(ts, value, replace=replace) and not replace:
                continue
            added += 1
            if times[w.head] < cutoff or len(times) - w.head > max_points:
                touched[sid] = w
        for w in touched.values():
            w.trim(cutoff, max_points)
        return added

    def merge(
        self, ref: SeriesRef, times: Sequence[float], values: Sequence[float], now: float
    ) -> int:
        """Merge one series' stored points (``times`` ascending, e.g. a back-fill from the
        database) with what the window already holds, in one pass rather than one insert each.
        A point already held at the same instant is kept (it came from ingest, at least as
        recent). Points older than the window are skipped; returns how many were added."""
        cutoff = now - self.window_seconds
        lo = bisect_left(times, cutoff)
        if lo >= len(times):
            return 0
        w = self._windows.get(ref.series_id)
        if w is None:
            w = self._create(ref)
        held_t = w.ts[w.head :]
        held_v = w.values[w.head :]
        new_t = array("d", times[lo:])
        new_v = array("d", values[lo:])
        if not held_t:
            merged_t, merged_v, added = new_t, new_v, len(new_t)
        elif new_t[-1] < held_t[0]:
            merged_t, merged_v, added = new_t + held_t, new_v + held_v, len(new_t)
        else:
            merged_t, merged_v, added = _merge_points(held_t, held_v, new_t, new_v)
        w.ts, w.values, w.head = merged_t, merged_v, 0
        w.trim(cutoff, self.max_points)
        return added

    def evict(self, now: float) -> int:
        """Drop points that left the window, and series left with none; returns series
        dropped. Bounds memory for series that stopped reporting."""
        cutoff = now - self.window_seconds
        dead = []
        for sid, w in self._windows.items():
            w.trim(cutoff, self.max_points)
            if len(w) == 0:
                dead.append(sid)
        for sid in dead:
            w = self._windows.pop(sid)
            same_name = self._by_name[w.ref.name]
            del same_name[sid]
            if not same_name:
                del self._by_name[w.ref.name]
        return len(dead)

    def ref(self, series_id: int) -> SeriesRef | None:
        """The reference of a series the windows hold (None if none)."""
        w = self._windows.get(series_id)
        return None if w is None else w.ref

    def select(self, name: str | None, matchers: Sequence[Matcher] = ()) -> list[SeriesRef]:
        """Series named ``name`` (any name when None) whose labels (and ``agent``) satisfy
        every matcher; ``__name__`` matchers are checked against the series' name."""
        on_name = [m for m in matchers if m.label == NAME_LABEL]
        others = [m for m in matchers if m.label != NAME_LABEL] if on_name else matchers
        if name is not None:
            names = [name] if all(m.matches(name) for m in on_name) else []
        elif on_name:  # the names are far fewer than the series: match them once each
            names = [n for n in self._by_name if all(m.matches(n) for m in on_name)]
        else:
            return [
                w.ref
                for w in self._windows.values()
                if matches_all(others, w.ref.agent_id, w.ref.labels)
            ]
        return [
            w.ref
            for n in names
            for w in self._by_name.get(n, {}).values()
            if matches_all(others, w.ref.agent_id, w.ref.labels)
        ]

    def newest(self, series_id: int) -> float | None:
        """The instant of the newest point held for a series (None if none)."""
        w = self._windows.get(series_id)
        return None if w is None else w.newest()

    def points(self, series_id: int, start: float, end: float) -> list[Point]:
        """Points of one series with ``start < ts <= end``, oldest first."""
        w = self._windows.get(series_id)
        return [] if w is None else w.between(start, end)

    def latest(self, series_id: int, at: float, lookback: float) -> Point | None:
        """The newest point with ``at - lookback < ts <= at`` (an instant selector)."""
        pts = self.points(series_id, at - lookback, at)
        return pts[-1] if pts else None

    def range(
        self, name: str | None, matchers: Sequence[Matcher], start: float, end: float
    ) -> list[tuple[SeriesRef, list[Point]]]:
        """Every matching series with its points in ``(start, end]`` (empty ones left out)."""
        out = []
        for ref in self.select(name, matchers):
            pts = self.points(ref.series_id, start, end)
            if pts:
                out.append((ref, pts))
        return out

    def _create(self, ref: SeriesRef) -> _Window:
        w = _Window(ref)
        self._windows[ref.series_id] = w
        self._by_name.setdefault(ref.name, {})[ref.series_id] = w
        return w


def _merge_points(
    held_t: array[float], held_v: array[float], new_t: array[float], new_v: array[float]
) -> tuple[array[float], array[float], int]:
    """Both inputs ascending; on equal instants the held point wins."""
    out_t = array("d")
    out_v = array("d")
    i = j = added = 0
    nh, nn = len(held_t), len(new_t)
    while i < nh and j < nn:
        a, b = held_t[i], new_t[j]
        if a < b:
            out_t.append(a)
            out_v.append(held_v[i])
            i += 1
        elif b < a:
            out_t.append(b)
            out_v.append(new_v[j])
            j += 1
            added += 1
        else:
            out_t.append(a)
            out_v.append(held_v[i])
            i += 1
            j += 1
    out_t.extend(held_t[i:])
    out_v.extend(held_v[i:])
    out_t.extend(new_t[j:])
    out_v.extend(new_v[j:])
    added += nn - j
    return out_t, out_v, added
