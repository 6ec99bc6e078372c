"""The PromQL of issue 12 through our own seams: the windows' name-less selection, range
evaluation, `@` and subquery step alignment, staleness, what rules may use. (Prometheus's own
test files and promtool parity, in tests/conformance, check the function semantics.)"""

from __future__ import annotations

import math

import pytest

from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.query.matchers import Matcher, MatchOp
from control_plane.rules import (
    EvaluationError,
    ExprError,
    evaluate,
    load_rules_text,
    parse_expr,
)
from control_plane.rules.aggregations import format_value
from control_plane.rules.evaluator import RangeSeries, evaluate_range, selector_names, uses_absent
from control_plane.rules.parser import parse_query
from control_plane.rules.span import needed_span
from control_plane.rules.staleness import STALE_NAN
from control_plane.rules.vector_functions import label_replace

CPU = SeriesRef(1, "a1", "cpu_seconds_total", {"job": "node", "mode": "user"})
MEM = SeriesRef(2, "a1", "mem_bytes", {"job": "node"})
WEB = SeriesRef(3, "a2", "cpu_seconds_total", {"job": "web", "mode": "user"})


def windows() -> SeriesWindows:
    w = SeriesWindows(window_seconds=10**6, max_points=10**5)
    for ref, scale in ((CPU, 1.0), (MEM, 100.0), (WEB, 2.0)):
        w.add([(ref, float(t), scale * t) for t in range(0, 601, 15)], 600.0)
    return w


def by_labels(value: object) -> dict[frozenset[tuple[str, str]], float]:
    assert isinstance(value, list)
    return {frozenset(s.labels.items()): s.value for s in value}


def test_select_without_a_name_reads_every_metric_and_name_matchers() -> None:
    w = windows()
    assert {r.series_id for r in w.select(None, [Matcher("job", MatchOp.EQ, "node")])} == {1, 2}
    name_re = parse_expr('{__name__=~"cpu.*|mem_bytes", agent="a1"}')
    got = evaluate(name_re, w, 600.0)
    assert isinstance(got, list)
    assert {s.labels["__name__"] for s in got} == {
        "cpu_seconds_total",
        "mem_bytes",
    }
    # A `__name__` matcher alongside a name narrows within that name.
    ne = Matcher("__name__", MatchOp.NE, "cpu_seconds_total")
    assert w.select("cpu_seconds_total", [ne]) == []


def test_a_selector_needs_a_matcher_that_excludes_the_empty_string() -> None:
    for text in ("{}", '{job=""}', '{job=~".*"}'):
        with pytest.raises(ExprError, match="matcher that does not match the empty string"):
            parse_expr(text)
    parse_expr('{job=~".+"}')


def test_rules_concern_the_names_they_read_and_absent_over_time_waits_for_warm_up() -> None:
    assert selector_names(parse_expr('{job="x"} > 1')) == set()
    assert selector_names(parse_expr('{__name__="up", job="x"}')) == {"up"}
    assert selector_names(parse_expr("max_over_time(rate(a[5m])[1h:1m]) / b @ 100")) == {"a", "b"}
    assert selector_names(parse_expr("topk(scalar(k), c)")) == {"k", "c"}
    assert uses_absent(parse_expr("absent_over_time(up[5m])"))
    assert uses_absent(parse_expr("sum(absent(up))"))
    assert not uses_absent(parse_expr("present_over_time(up[5m])"))
    # The back-fill covers a subquery's range plus what its expression reads at its oldest step.
    assert needed_span([parse_expr("max_over_time(rate(a[5m])[1h:1m] offset 10m)")], 300) == (
        3600 + 600 + 300
    )


def test_rules_load_with_the_new_functions() -> None:
    rules = load_rules_text(
        """
groups:
  - name: g
    rules:
      - alert: NoisyTop
        expr: topk(3, rate(cpu_seconds_total[5m])) > 0.9
      - alert: Flapping
        expr: changes(up[10m]) > 4 and on(agent) (sum_over_time(up[10m:1m]) < 5)
      - alert: DiskFull
        expr: predict_linear(disk_free_bytes{job=~".+"}[1h], 4 * 3600) < 0
      - alert: Relabelled
        expr: label_replace(up, "host", "$1", "instance", "(.*):.*") == 0
"""
    )
    assert [r.name for r in rules] == ["NoisyTop", "Flapping", "DiskFull", "Relabelled"]
    with pytest.raises(ExprError, match="a string cannot be the result"):
        parse_expr('"text"')
    with pytest.raises(ExprError, match="range vector cannot be the result"):
        parse_expr("up[5m]")


def test_instant_queries_may_return_strings_and_range_vectors() -> None:
    w = windows()
    assert evaluate(parse_query('"hello"'), w, 600.0) == "hello"
    got = evaluate(parse_query("mem_bytes[30s]"), w, 600.0)
    assert isinstance(got, tuple) and len(got) == 1
    series = got[0]
    assert isinstance(series, RangeSeries)
    assert series.points == [(585.0, 58500.0), (600.0, 60000.0)]


def test_subquery_steps_are_multiples_of_the_step_whatever_the_evaluation_time() -> None:
    w = windows()
    # vector(time()) at each step of a 1m:20s subquery: the steps are 20, 40, 60 at 65 and
    # 80 s alike (absolute multiples of 20 s in (t - 60, t]), never 5, 25, 45, 65.
    expr = parse_expr("max_over_time(vector(time())[1m:20s])")
    count = parse_expr("count_over_time(vector(time())[1m:20s])")
    for at, newest in ((65.0, 60.0), (79.9, 60.0), (80.0, 80.0)):
        assert by_labels(evaluate(expr, w, at)) == {frozenset(): newest}
        assert by_labels(evaluate(count, w, at)) == {frozenset(): 3.0}


def test_at_modifier_pins_the_time_and_start_end_are_the_query_bounds() -> None:
    w = windows()
    pinned = parse_expr("mem_bytes @ 300")
    assert by_labels(evaluate(pinned, w, 600.0)) == {
        frozenset({("__name__", "mem_bytes"), ("agent", "a1"), ("job", "node")}): 30000.0
    }
    out = evaluate_range(parse_expr("mem_bytes @ start() - mem_bytes"), w, 120.0, 180.0, 30.0)
    assert [points for _, points in out.values()] == [
        [(120.0, 0.0), (150.0, -3000.0), (180.0, -6000.0)]
    ]
    # An instant query's start() and end() are its time.
    assert by_labels(evaluate(parse_expr("mem_bytes @ end() - mem_bytes"), w, 450.0)) == {
        frozenset({("agent", "a1"), ("job", "node")}): 0.0
    }


def test_evaluate_range_gives_each_series_its_points_and_the_query_step() -> None:
    w = windows()
    out = evaluate_range(parse_expr("rate(cpu_seconds_total[1m])"), w, 300.0, 420.0, 60.0)
    assert {labels["job"]: [v for _, v in pts] for labels, pts in out.values()} == {
        "node": pytest.approx([1.0, 1.0, 1.0]),
        "web": pytest.approx([2.0, 2.0, 2.0]),
    }
    assert [t for t, _ in next(iter(out.values()))[1]] == [300.0, 360.0, 420.0]
    steps = evaluate_range(parse_query("step() + range()"), w, 0.0, 100.0, 50.0)
    assert list(steps.values()) == [({}, [(0.0, 150.0), (50.0, 150.0), (100.0, 150.0)])]
    with pytest.raises(ValueError):
        evaluate_range(parse_expr("up"), w, 0.0, 10.0, 0.0)


def test_a_staleness_marker_ends_a_series() -> None:
    w = windows()
    w.add([(MEM, 610.0, STALE_NAN)], 610.0)
    assert evaluate(parse_expr("mem_bytes"), w, 620.0) == []
    # Range selectors leave the marker out; a later sample brings the series back.
    rows = by_labels(evaluate(parse_expr("count_over_time(mem_bytes[30s])"), w, 620.0))
    assert list(rows.values()) == [1.0]
    w.add([(MEM, 615.0, 5.0)], 615.0)
    assert evaluate(parse_expr("mem_bytes"), w, 612.0) == []
    assert [s.value for s in evaluate(parse_expr("mem_bytes"), w, 616.0)] == [5.0]  # type: ignore[union-attr]


def test_delayed_name_removal_lets_label_replace_read_the_name() -> None:
    w = windows()
    expr = parse_expr(
        'label_replace(rate({job="node"}[1m]), "metric", "$1", "__name__", "(.+)_(total|bytes)")'
    )
    got = by_labels(evaluate(expr, w, 600.0))
    assert {dict(k)["metric"] for k in got} == {"cpu_seconds", "mem"}
    assert all("__name__" not in dict(k) for k in got)
    # Two series that differ only by the name they lose collide in the result.
    collide = parse_expr('label_replace(rate({job="node"}[1m]), "mode", "", "mode", ".*")')
    with pytest.raises(EvaluationError, match="same labelset"):
        evaluate(collide, w, 600.0)


def test_go_formatting_and_template_expansion() -> None:
    assert format_value(1e21) == "1000000000000000000000"
    assert format_value(1e-7) == "0.0000001"
    assert format_value(-2.5) == "-2.5"
    assert format_value(3.0) == "3"
    assert format_value(math.inf) == "+Inf"
    # Go's Expand: `$1x` names the group "1x" (empty), `${1}x` is group 1 then "x".
    labels = {"src": "abc"}
    assert "dst" not in label_replace(labels, "dst", "$1x", "src", "(a)bc")
    assert label_replace(labels, "dst", "${1}x", "src", "(a)bc")["dst"] == "ax"
    # The regex is anchored: "b" does not match "abc".
    assert "dst" not in label_replace(labels, "dst", "y", "src", "b")


def test_range_evaluation_in_one_pass_equals_each_step_evaluated_alone() -> None:
    # Gaps longer than the lookback, counter resets, a staleness marker, off-step samples.
    w = SeriesWindows(window_seconds=10**6, max_points=10**5)
    for n, (job, scale) in enumerate((("a", 1.0), ("b", 3.0), ("c", 0.5)), start=1):
        ref = SeriesRef(n, f"agent-{n}", "reqs_total", {"job": job})
        points = []
        for i in range(400):
            t = i * 7.0 + n
            if (i // 25) % 4 == n % 4:  # a 175 s gap, longer than the 60 s lookback
                continue
            value = (i % (90 + 17 * n)) * scale  # resets every 90-150 points
            points.append((ref, t, STALE_NAN if i == 200 + n else value))
        w.add(points, 3000.0)
    exprs = [
        "reqs_total",
        "reqs_total offset 30s",
        "rate(reqs_total[1m])",
        "increase(reqs_total[2m] offset 1m)",
        "delta(reqs_total[90s])",
        "irate(reqs_total[1m]) + idelta(reqs_total[1m])",
        "changes(reqs_total[5m]) - resets(reqs_total[5m])",
        "avg_over_time(reqs_total[1m]) * last_over_time(reqs_total[1m])",
        "sum by (job) (rate(reqs_total[1m])) / on() group_left sum(rate(reqs_total[1m]))",
        "topk(2, reqs_total)",
        'label_replace(rate(reqs_total[1m]), "n", "$1", "__name__", "(.*)_total")',
        "max_over_time(rate(reqs_total[1m])[3m:20s])",
        "reqs_total @ 1000 - reqs_total",
        "timestamp(reqs_total)",
        "absent(reqs_total{job='z'})",
        "quantile_over_time(0.5, reqs_total[2m])",
    ]
    for text in exprs:
        expr = parse_expr(text)
        at_once = evaluate_range(expr, w, 100.0, 2900.0, 13.0, lookback_s=60.0)
        one_by_one: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        for i in range(216):
            t = 100.0 + i * 13.0
            result = evaluate(expr, w, t, lookback_s=60.0, start=100.0, end=2900.0, step=13.0)
            assert isinstance(result, list)
            for s in result:
                one_by_one.setdefault(tuple(sorted(s.labels.items())), []).append((t, s.value))
        assert {k: pts for k, (_, pts) in at_once.items()} == one_by_one, text
        assert at_once, text


def test_range_evaluation_calls_check_so_a_deadline_can_stop_it() -> None:
    calls = 0

    class Deadline(Exception):
        pass

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise Deadline

    w = windows()
    with pytest.raises(Deadline):
        evaluate_range(parse_expr("sum(rate(cpu_seconds_total[1m]))"), w, 0, 600, 1.0, check=check)
    calls = -(10**6)
    evaluate_range(parse_expr("mem_bytes"), w, 0, 600, 1.0, check=check)
    assert calls > -(10**6)  # called, and silent when in time
