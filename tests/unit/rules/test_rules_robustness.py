"""What issue 9 found in the rule language: deep nesting, keyword case, RE2 patterns, and the
arithmetic that raised (mixed infinities, values near 1e308, `%` on infinities)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.rules.cli import main
from control_plane.rules.errors import ExprError
from control_plane.rules.evaluator import evaluate
from control_plane.rules.functions import kahan_sum, mean, nan_aware_max, nan_aware_min
from control_plane.rules.parser import MAX_DEPTH, parse_expr
from control_plane.rules.regex import RegexError, compile_matcher, translate

# -- nesting bound ---------------------------------------------------------------------------

DEEP = {
    "parentheses": "(" * 5000 + "up" + ")" * 5000,
    "unary minus": "-" * 5000 + "up",
    "calls": "absent(" * 5000 + "up" + ")" * 5000,
    "aggregations": "sum(" * 5000 + "up" + ")" * 5000,
    "power chain": "up" + " ^ 2" * 5000,
    "long sum": "up" + " + up" * 5000,
}


@pytest.mark.parametrize("text", DEEP.values(), ids=DEEP.keys())
def test_deep_nesting_is_a_short_parse_error_with_position(text: str) -> None:
    with pytest.raises(ExprError) as info:
        parse_expr(text)
    assert f"deeper than {MAX_DEPTH} levels" in info.value.detail
    assert 0 <= info.value.position < len(text)
    assert len(str(info.value)) < 200


def test_nesting_up_to_the_bound_parses_and_evaluates() -> None:
    depth = MAX_DEPTH - 2
    expr = parse_expr("(" * depth + "up" + ")" * depth + " > 0")
    assert evaluate(expr, SeriesWindows(window_seconds=60, max_points=10), 0.0) == []
    parse_expr("-" * (MAX_DEPTH - 2) + "up")
    parse_expr(" + ".join(["up"] * (MAX_DEPTH - 2)))


def test_rules_check_refuses_deep_nesting_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.yml"
    expr = "(" * 5000 + "up" + ")" * 5000
    deep.write_text(f"groups: [{{name: g, rules: [{{alert: A, expr: '{expr}'}}]}}]")
    assert main(["check", str(deep)]) == 1
    err = capsys.readouterr().err
    assert "deeper than" in err and "position" in err and len(err) < 300


def test_haetae_rules_check_command_refuses_deep_nesting(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yml"
    expr = "-" * 5000 + "up"
    deep.write_text(f"groups: [{{name: g, rules: [{{alert: A, expr: '{expr}'}}]}}]")
    done = subprocess.run(
        [sys.executable, "-m", "haetae.cli", "rules", "check", str(deep)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "deeper than" in done.stderr and "RecursionError" not in done.stderr
    assert len(done.stderr) < 300


# -- keywords are case-insensitive, function names are not ------------------------------------


def windows() -> SeriesWindows:
    w = SeriesWindows(window_seconds=3600, max_points=100)
    refs = [
        SeriesRef(1, "a", "req", {"job": "api", "code": "200"}),
        SeriesRef(2, "a", "req", {"job": "api", "code": "500"}),
        SeriesRef(3, "a", "limit", {"job": "api"}),
    ]
    w.add([(refs[0], 0.0, 1.0), (refs[1], 0.0, 2.0), (refs[2], 0.0, 10.0)], 0.0)
    w.add([(refs[0], 60.0, 3.0), (refs[1], 60.0, 4.0), (refs[2], 60.0, 10.0)], 60.0)
    return w


def values(result: object) -> list[float]:
    assert isinstance(result, list)
    return sorted(s.value for s in result)


@pytest.mark.parametrize(
    ("upper", "lower"),
    [
        ("SUM(req) BY (job)", "sum by (job) (req)"),
        ("Sum WITHOUT (code) (req)", "sum without (code) (req)"),
        ("req OFFSET 1m", "req offset 1m"),
        ("req > BOOL 2", "req > bool 2"),
        ("req / ON(job) GROUP_LEFT limit", "req / on(job) group_left limit"),
        ("req / IGNORING(code) GROUP_LEFT limit", "req / ignoring(code) group_left limit"),
        ("req AND req > 3", "req and req > 3"),
        ("req UNLESS req > 3", "req unless req > 3"),
        ("req > 3 OR req", "req > 3 or req"),
        ("MAX(req)", "max(req)"),
    ],
)
def test_keywords_and_aggregations_are_case_insensitive(upper: str, lower: str) -> None:
    w = windows()
    assert values(evaluate(parse_expr(upper), w, 60.0)) == values(
        evaluate(parse_expr(lower), w, 60.0)
    )


def test_function_names_are_case_sensitive_as_in_prometheus() -> None:
    with pytest.raises(ExprError, match="unknown function 'Rate'"):
        parse_expr("Rate(req[5m])")


def test_durations_may_be_plain_seconds() -> None:
    w = windows()
    assert values(evaluate(parse_expr("sum_over_time(req[90])"), w, 60.0)) == [4.0, 6.0]
    assert values(evaluate(parse_expr("req offset 60"), w, 60.0)) == [1.0, 2.0]
    assert values(evaluate(parse_expr("req offset -60"), w, 0.0)) == [3.0, 4.0]


# -- RE2 -------------------------------------------------------------------------------------


def test_mid_pattern_flags_follow_re2() -> None:
    w = windows()
    result = evaluate(parse_expr('req{job=~"((?i)AP)I"}'), w, 60.0)
    assert result == []  # (?i) covers "AP" only: "I" stays case-sensitive
    result = evaluate(parse_expr('req{job=~"((?i)AP)i"}'), w, 60.0)
    assert values(result) == [3.0, 4.0]
    assert compile_matcher("a(?i)b|c").fullmatch("C")  # the flag covers the other alternative
    assert not compile_matcher("a(?i)b|c").fullmatch("Ab")


@pytest.mark.parametrize(
    ("pattern", "text", "hit"),
    [
        ("ap", "api", False),  # fully anchored
        (".*", "a\nb", True),  # `.` matches a newline, as Prometheus's (?s:...)
        (r"\d+", "٣", False),  # RE2's \d is ASCII
        (r"[[:alpha:]]+", "abc", True),
        (r"a$", "a\n", False),  # $ is the end of the text
        (r"\Qa.b\E", "axb", False),
        (r"(?P<x>a)(?<y>b)", "ab", True),
    ],
)
def test_re2_semantics(pattern: str, text: str, hit: bool) -> None:
    assert (compile_matcher(pattern).fullmatch(text) is not None) is hit


@pytest.mark.parametrize("pattern", ["(?=a)a", r"(a)\1", "a*+", r"\pL", "(?U)a", "(a", "[a"])
def test_what_re2_refuses_is_refused(pattern: str) -> None:
    with pytest.raises(RegexError):
        compile_matcher(pattern)
    with pytest.raises(ExprError, match="bad regular expression"):
        parse_expr(f'req{{job=~"{pattern}"}}'.replace("\\", "\\\\"))


def test_translate_keeps_plain_patterns() -> None:
    assert translate("api|web-[0-9]+") == "api|web-[0-9]+"


# -- arithmetic that raised ------------------------------------------------------------------


def test_sum_and_mean_never_raise() -> None:
    assert math.isnan(kahan_sum([math.inf, -math.inf]))
    assert kahan_sum([1.0, 1e100, 1.0, -1e100]) == 2.0  # Kahan keeps the small terms
    assert kahan_sum([1e308, 1e308]) == math.inf
    assert mean([1e308, 1e308, 1e308]) == pytest.approx(1e308)  # the sum overflows, not the mean
    assert mean([-1e308, -1e308]) == pytest.approx(-1e308)
    assert mean([1.0, 1e100, 1.0, -1e100]) == 0.5
    assert math.isnan(mean([math.inf, -math.inf]))


def test_min_max_ignore_nan_unless_all_nan() -> None:
    assert nan_aware_min([math.nan, 1.0, 0.0]) == 0.0
    assert nan_aware_max([1.0, math.nan]) == 1.0
    assert math.isnan(nan_aware_min([math.nan, math.nan]))


def constant(value: float) -> SeriesWindows:
    w = SeriesWindows(window_seconds=3600, max_points=10)
    w.add([(SeriesRef(1, "a", "x", {}), 0.0, value)], 0.0)
    return w


@pytest.mark.parametrize(
    ("expr", "value", "want"),
    [
        ("x % 2", math.inf, math.nan),
        ("x % 2", -math.inf, math.nan),
        ("x % 0", 3.0, math.nan),
        ("x % Inf", 3.0, 3.0),
        ("x ^ 0.5", -8.0, math.nan),
        ("x ^ 309", -10.0, -math.inf),
        ("x ^ -1", 0.0, math.inf),
        ("sum(x) + avg(x)", 1e308, math.inf),
    ],
)
def test_operators_answer_like_go(expr: str, value: float, want: float) -> None:
    result = evaluate(parse_expr(expr), constant(value), 0.0)
    assert isinstance(result, list)
    (sample,) = result
    assert sample.value == want or (math.isnan(want) and math.isnan(sample.value))


def test_range_edges_are_exact_at_milliseconds() -> None:
    # Prometheus' functions.test: 1 ms samples; a 1001 ms range at 4 s holds 1001 of them.
    w = SeriesWindows(window_seconds=3600, max_points=10_000)
    ref = SeriesRef(1, "a", "m", {})
    w.add([(ref, i / 1000, 1.0) for i in range(4001)], 4.0)
    for ms in (1000, 1001, 2002, 3003):
        result = evaluate(parse_expr(f"sum_over_time(m[{ms}ms])"), w, 4.0)
        assert isinstance(result, list)
        (s,) = result
        assert s.value == ms
