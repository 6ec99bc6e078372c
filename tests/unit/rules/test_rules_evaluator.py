from __future__ import annotations

import math

import pytest

from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.rules.evaluator import EvaluationError, Sample, evaluate
from control_plane.rules.functions import extrapolated_rate
from control_plane.rules.parser import parse_expr

T0 = 1_700_000_000.0


class Data:
    """Series fed into real ingest windows, as Prometheus' test 'load' blocks do."""

    def __init__(self) -> None:
        self.windows = SeriesWindows(window_seconds=7200, max_points=10_000)
        self._next_id = 1

    def load(
        self,
        name: str,
        labels: dict[str, str],
        values: list[float],
        *,
        step: float = 60.0,
        agent: str = "a1",
        start: float = T0,
    ) -> None:
        ref = SeriesRef(self._next_id, agent, name, labels)
        self._next_id += 1
        self.windows.add(
            [(ref, start + i * step, v) for i, v in enumerate(values)], start + len(values) * step
        )

    def eval(self, text: str, at: float) -> list[Sample] | float:
        result = evaluate(parse_expr(text), self.windows, at)
        assert isinstance(result, list | float)
        return result


def by_label(result: object, label: str) -> dict[str, float]:
    assert isinstance(result, list)
    return {s.labels.get(label, ""): s.value for s in result}


def test_instant_selector_takes_latest_point_within_lookback() -> None:
    d = Data()
    d.load("up", {"job": "api"}, [1, 1, 0])
    d.load("up", {"job": "db"}, [1])
    out = d.eval('up{job=~"api|db"}', T0 + 120)
    assert by_label(out, "job") == {"api": 0.0, "db": 1.0}
    assert isinstance(out, list) and out[0].labels["__name__"] == "up"
    assert out[0].labels["agent"] == "a1"
    # db's only point is older than the 5 minute lookback at T0 + 301.
    assert by_label(d.eval("up", T0 + 301), "job") == {"api": 0.0}


def test_rate_and_increase_match_prometheus_extrapolation() -> None:
    # Prometheus' functions.test: 0+10x10 every 5m, increase over 50m at 50m is 100.
    d = Data()
    d.load("http_requests", {"path": "/foo"}, [10.0 * i for i in range(11)], step=300)
    at = T0 + 3000
    assert by_label(d.eval("increase(http_requests[50m])", at), "path") == {
        "/foo": pytest.approx(100.0)
    }
    assert by_label(d.eval("rate(http_requests[50m])", at), "path") == {
        "/foo": pytest.approx(100.0 / 3000)
    }


def test_counter_reset_is_added_back() -> None:
    # 10..50 then a reset to 0 and up to 40: the raw delta 30 plus the 50 lost at the reset.
    pts = [(T0 + 300 * i, v) for i, v in enumerate([10, 20, 30, 40, 50, 0, 10, 20, 30, 40], 1)]
    end = T0 + 3000
    got = extrapolated_rate(pts, end - 3000, end, is_rate=False)
    sampled = 2700.0
    # The first point is 300 s from the start (< 1.1 average steps): extrapolate the full 300 s,
    # unless the counter's zero point is nearer: 2700 * 10/80 = 337.5 s, not nearer.
    assert got == pytest.approx(80 * (sampled + 300) / sampled)


def test_extrapolation_limits() -> None:
    # Samples far from the range edges are extrapolated by half an interval only.
    pts = [(1000.0, 5.0), (1010.0, 6.0), (1020.0, 7.0)]
    got = extrapolated_rate(pts, 900.0, 1200.0, is_rate=False)
    assert got == pytest.approx(2 * (20 + 5 + 5) / 20)
    # Never extrapolated below the counter's zero point.
    pts = [(1000.0, 1.0), (1010.0, 11.0)]
    got = extrapolated_rate(pts, 995.0, 1010.0, is_rate=False)
    assert got == pytest.approx(10 * (10 + 1) / 10)
    assert extrapolated_rate([(1.0, 1.0)], 0.0, 2.0, is_rate=True) is None


def test_over_time_functions() -> None:
    d = Data()
    d.load("cache_hit_ratio", {}, [0.9, 0.8, 1.0, 0.7])
    at = T0 + 180
    assert d.eval("avg_over_time(cache_hit_ratio[5m])", at)[0].value == pytest.approx(0.85)  # type: ignore[index]
    assert d.eval("min_over_time(cache_hit_ratio[5m])", at)[0].value == 0.7  # type: ignore[index]
    assert d.eval("max_over_time(cache_hit_ratio[5m])", at)[0].value == 1.0  # type: ignore[index]
    # The range is left-open: (at - 2m, at] leaves out the point at exactly at - 2m.
    assert d.eval("count_over_time(cache_hit_ratio[2m])", at)[0].value == 2  # type: ignore[index]
    out = d.eval("avg_over_time(cache_hit_ratio[5m])", at)
    assert isinstance(out, list) and "__name__" not in out[0].labels


def test_aggregations_by_and_without() -> None:
    d = Data()
    d.load("cpu", {"cpu": "0", "mode": "user"}, [1.0], agent="a1")
    d.load("cpu", {"cpu": "1", "mode": "user"}, [3.0], agent="a1")
    d.load("cpu", {"cpu": "0", "mode": "user"}, [5.0], agent="a2")
    at = T0 + 10
    assert by_label(d.eval("sum by (agent) (cpu)", at), "agent") == {"a1": 4.0, "a2": 5.0}
    assert by_label(d.eval("avg by (agent) (cpu)", at), "agent") == {"a1": 2.0, "a2": 5.0}
    assert by_label(d.eval("min by (agent) (cpu)", at), "agent") == {"a1": 1.0, "a2": 5.0}
    assert by_label(d.eval("max(cpu) by (agent)", at), "agent") == {"a1": 3.0, "a2": 5.0}
    assert by_label(d.eval("count by (cpu) (cpu)", at), "cpu") == {"0": 2.0, "1": 1.0}
    total = d.eval("sum(cpu)", at)
    assert isinstance(total, list) and total[0] == Sample({}, 9.0)
    out = d.eval("sum without (cpu) (cpu)", at)
    assert sorted((dict(s.labels)["agent"], s.value) for s in out) == [("a1", 4.0), ("a2", 5.0)]  # type: ignore[union-attr]


def test_arithmetic_and_threshold_filtering() -> None:
    d = Data()
    d.load("errors", {"path": "/a"}, [5.0])
    d.load("errors", {"path": "/b"}, [1.0])
    d.load("requests", {"path": "/a"}, [10.0])
    d.load("requests", {"path": "/b"}, [100.0])
    at = T0 + 10
    ratio = d.eval("errors / requests", at)
    assert by_label(ratio, "path") == {"/a": 0.5, "/b": 0.01}
    assert by_label(d.eval("errors / requests > 0.1", at), "path") == {"/a": 0.5}
    # Scalar on the left: the vector's own value is kept.
    assert by_label(d.eval("2 < errors", at), "path") == {"/a": 5.0}
    # Comparison filters keep the metric name; arithmetic drops it.
    kept = d.eval("errors > 2", at)
    assert isinstance(kept, list) and kept[0].labels["__name__"] == "errors"
    assert by_label(d.eval("errors > bool 2", at), "path") == {"/a": 1.0, "/b": 0.0}
    assert by_label(d.eval("-errors * 2 + 1", at), "path") == {"/a": -9.0, "/b": -1.0}
    assert by_label(d.eval("errors % 2 ^ 2", at), "path") == {"/a": 1.0, "/b": 1.0}
    assert d.eval("1 + 2 * 3", at) == 7.0
    assert d.eval("2 > bool 1", at) == 1.0
    div0 = by_label(d.eval("errors / 0", at), "path")
    assert div0["/a"] == math.inf


def test_vector_matching_with_duplicate_label_sets_is_an_error() -> None:
    d = Data()
    # Two series whose label sets are equal (a source may return them; windows never do).
    d.load("x", {"a": "1"}, [1.0])
    d.load("x", {"a": "1"}, [2.0])
    d.load("y", {"a": "1"}, [1.0])
    with pytest.raises(EvaluationError, match="many-to-one matching must be explicit"):
        d.eval("x + y", T0)
    with pytest.raises(EvaluationError, match="on the right hand-side"):
        d.eval("y + x", T0)
    # Without a partner a series is left out, with no error.
    assert d.eval("y + nothing", T0) == []


def test_absent() -> None:
    d = Data()
    d.load("up", {"job": "api"}, [1.0])
    at = T0 + 10
    assert d.eval('absent(up{job="api"})', at) == []
    assert d.eval('absent(up{job="db", env=~"p.*"})', at) == [Sample({"job": "db"}, 1.0)]
    assert d.eval("absent(nothing)", at) == [Sample({}, 1.0)]
    assert d.eval("absent(sum(nothing))", at) == [Sample({}, 1.0)]
    # Once the data is older than the lookback, it is absent.
    assert d.eval('absent(up{job="api"})', T0 + 400) == [Sample({"job": "api"}, 1.0)]
