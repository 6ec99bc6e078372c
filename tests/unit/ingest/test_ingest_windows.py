"""The in-memory series windows: bounds, ordering, selection by name and matchers."""

from __future__ import annotations

from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.query.matchers import parse_matcher

A = SeriesRef(1, "web-1", "http_requests_total", {"path": "/", "code": "200"})
B = SeriesRef(2, "web-2", "http_requests_total", {"path": "/api", "code": "500"})
C = SeriesRef(3, "web-1", "cpu", {})


def windows(seconds: float = 100.0, points: int = 1000) -> SeriesWindows:
    return SeriesWindows(window_seconds=seconds, max_points=points)


def test_points_are_half_open_ranges_in_time_order() -> None:
    w = windows()
    w.add([(A, 10.0, 1.0), (A, 20.0, 2.0), (A, 30.0, 3.0)], now=30.0)
    assert w.points(1, 10.0, 30.0) == [(20.0, 2.0), (30.0, 3.0)]
    assert w.points(1, 0.0, 25.0) == [(10.0, 1.0), (20.0, 2.0)]
    assert w.latest(1, at=29.0, lookback=15.0) == (20.0, 2.0)
    assert w.latest(1, at=29.0, lookback=5.0) is None
    assert w.points(99, 0, 100) == []


def test_late_samples_are_inserted_in_place_and_same_instant_overwrites() -> None:
    w = windows()
    w.add([(A, 10.0, 1.0), (A, 30.0, 3.0)], now=30.0)
    w.add([(A, 20.0, 2.0), (A, 30.0, 33.0), (A, 5.0, 0.5)], now=30.0)
    assert w.points(1, 0, 100) == [(5.0, 0.5), (10.0, 1.0), (20.0, 2.0), (30.0, 33.0)]


def test_window_is_bounded_by_age_and_by_points() -> None:
    w = windows(seconds=100.0, points=50)
    added = w.add([(A, float(t), float(t)) for t in range(0, 300)], now=299.0)
    assert added == 101  # ts 199..299 are within 100 s of now; 0..198 were too old
    assert [t for t, _ in w.points(1, 0, 1000)] == [float(t) for t in range(250, 300)]
    w.add([(A, 300.0, 1.0)], now=300.0)
    assert [t for t, _ in w.points(1, 0, 1000)] == [float(t) for t in range(251, 301)]


def test_trimming_compacts_old_points() -> None:
    w = windows(seconds=10.0, points=100_000)
    for t in range(1000):
        w.add([(A, float(t), 0.0)], now=float(t))
    assert [t for t, _ in w.points(1, 0, 10_000)] == [float(t) for t in range(989, 1000)]
    assert len(w._windows[1].ts) < 200  # the dead prefix was cut off, not just skipped


def test_select_by_name_and_matchers_including_agent() -> None:
    w = windows()
    w.add([(A, 1.0, 1.0), (B, 1.0, 1.0), (C, 1.0, 1.0)], now=1.0)
    ids = lambda sel: sorted(r.series_id for r in sel)  # noqa: E731
    assert ids(w.select("http_requests_total")) == [1, 2]
    assert ids(w.select("http_requests_total", [parse_matcher('code=~"5.."')])) == [2]
    assert ids(w.select("http_requests_total", [parse_matcher('agent="web-1"')])) == [1]
    assert ids(w.select("http_requests_total", [parse_matcher('path!~"/api.*"')])) == [1]
    assert ids(w.select("http_requests_total", [parse_matcher('missing=""')])) == [1, 2]
    assert w.select("nope") == []
    assert [(r.series_id, p) for r, p in w.range("cpu", [], 0.0, 5.0)] == [(3, [(1.0, 1.0)])]


def test_evict_drops_series_that_stopped_reporting() -> None:
    w = windows(seconds=10.0)
    w.add([(A, 1.0, 1.0), (C, 1.0, 1.0)], now=1.0)
    w.add([(A, 15.0, 1.0)], now=15.0)
    assert w.evict(now=15.0) == 1
    assert len(w) == 1 and w.select("cpu") == []
