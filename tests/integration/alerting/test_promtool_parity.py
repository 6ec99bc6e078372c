"""Our evaluator against real Prometheus (``promtool test rules``, Debian package
``prometheus``) on the same input series, for every supported function and operator.

promtool prints what an expression returned when the expected samples differ, so each case is
run expecting nothing and the "got" lines are parsed. Samples are placed off the range
boundaries (Prometheus 2 selects ranges closed at the start, Prometheus 3 and we open), and
some series have gaps so that extrapolation takes both of its branches.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from promtool_support import PROMTOOL, promtool_results, seconds

from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.rules import (
    EvaluationError,
    evaluate,
    export_prometheus,
    load_rules_dir,
    parse_expr,
)

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian: prometheus) missing")

STEP = 60
N = 75  # samples per series: enough for [1h] ranges

Values = list[float | None]


def _counter(start: float, incs: list[float], reset_at: int | None = None) -> Values:
    out: Values = []
    v = start
    for i in range(N):
        if reset_at is not None and i == reset_at:
            v = 3.0
        out.append(v)
        v += incs[i % len(incs)]
    return out


SERIES: dict[str, tuple[str, dict[str, str], Values]] = {
    "a1_a": ("http_requests_total", {"agent": "a1", "path": "/a"}, _counter(0, [10, 12, 7], 40)),
    "a2_a": ("http_requests_total", {"agent": "a2", "path": "/a"}, _counter(100, [7])),
    "a2_b": (
        "http_requests_total",
        {"agent": "a2", "path": "/b"},
        [None if i % 4 in (1, 2) else v for i, v in enumerate(_counter(5, [1, 0, 3]))],
    ),
    "r1": ("cache_hit_ratio", {"agent": "a1"}, [0.9 + 0.05 * math.sin(i / 3) for i in range(N)]),
    "r2": ("cache_hit_ratio", {"agent": "a2"}, [0.5 + 0.01 * (i % 7) for i in range(N)]),
    "h1": ("demo_cache_hits_total", {"agent": "a1"}, _counter(0, [90, 95, 85])),
    "m1": ("demo_cache_misses_total", {"agent": "a1"}, _counter(0, [10, 5, 30])),
    # What the default CacheHitRatioDrop reads: per agent, cache and layer.
    **{
        f"q{i}": (
            "haetae_cache_requests_total",
            {"agent": "a1", "cache": "demo", "layer": layer, "outcome": outcome},
            _counter(0, incs),
        )
        for i, (layer, outcome, incs) in enumerate(
            (
                ("l1", "hit", [90, 95, 85]),
                ("l1", "miss", [10, 5, 30]),
                ("l2", "stale", [1, 2, 0]),
                ("l2", "miss", [3, 1, 4]),
                ("loader", "hit", [2, 2, 2]),
            )
        )
    },
    "i1": ("agent_info", {"agent": "a1", "team": "web"}, [1.0] * N),
    "i2": ("agent_info", {"agent": "a2", "team": "db"}, [2.0] * N),
    **{
        f"b{le}": (
            "latency_seconds_bucket",
            {"agent": "a1", "le": le},
            _counter(0, [n, n * 2, n + 3]),
        )
        for le, n in (("0.1", 3), ("0.5", 8), ("1", 9), ("2.5", 15), ("+Inf", 16))
    },
}

EXPRS = [
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[10m])",
    "increase(http_requests_total[3m])",
    "increase(http_requests_total[15m])",
    "avg_over_time(cache_hit_ratio[5m])",
    "min_over_time(cache_hit_ratio[7m])",
    "max_over_time(cache_hit_ratio[7m])",
    "sum_over_time(http_requests_total[4m])",
    "count_over_time(http_requests_total[6m])",
    "http_requests_total",
    "sum by (agent) (rate(http_requests_total[5m]))",
    "avg by (path) (http_requests_total)",
    "min by (agent) (http_requests_total)",
    "max(http_requests_total) by (path)",
    "count by (agent) (http_requests_total)",
    "sum without (path) (http_requests_total)",
    "sum(http_requests_total)",
    "http_requests_total * 2 + 1",
    "-http_requests_total % 7",
    "2 ^ 3 - cache_hit_ratio",
    "rate(http_requests_total[5m]) > 0.1",
    "0.6 < cache_hit_ratio",
    "cache_hit_ratio <= bool 0.9",
    "sum by (agent) (http_requests_total) / count by (agent) (http_requests_total)",
    'absent(nothing{job="x", env=~"p.*"})',
    "absent(cache_hit_ratio)",
    'http_requests_total{path=~"/a|/b", agent!="a1"}',
    "http_requests_total offset 3m",
    "histogram_quantile(0.95, sum by (agent, le) (rate(latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(latency_seconds_bucket[10m]))",
    "histogram_quantile(0.99, latency_seconds_bucket)",
    "rate(http_requests_total[5m] offset 10m)",
    # Vector matching and the set operators.
    "http_requests_total / ignoring(path) group_left sum by (agent) (http_requests_total)",
    "http_requests_total * on(agent) group_left(team) agent_info",
    "agent_info * on(agent) group_right(team) http_requests_total",
    "sum by (agent) (http_requests_total) - on(agent) cache_hit_ratio",
    "sum by (agent, team) (agent_info) + ignoring(team) cache_hit_ratio",
    "cache_hit_ratio > on(agent) group_right sum by (agent, path) (rate(http_requests_total[5m]))",
    "rate(http_requests_total[5m]) > bool ignoring(path) group_left cache_hit_ratio / 3",
    "cache_hit_ratio < bool on(agent) agent_info",
    "http_requests_total > ignoring(path) group_left cache_hit_ratio * 300",
    "http_requests_total and on(agent) (cache_hit_ratio > 0.8)",
    "http_requests_total unless on(agent) (cache_hit_ratio > 0.8)",
    "cache_hit_ratio > 0.8 or cache_hit_ratio * 0",
    'http_requests_total{path="/a"} or on(agent) http_requests_total{path="/b"}',
    "agent_info and ignoring(team) cache_hit_ratio unless on(team) agent_info > 1",
]
EVAL_TIMES = ["7m30s", "16m10s", "44m59s", "70m20s"]


def _ours(expr: str, at: float) -> dict[frozenset[tuple[str, str]], float]:
    windows = SeriesWindows(window_seconds=10 * 3600, max_points=10_000)
    for i, (name, labels, values) in enumerate(SERIES.values()):
        ref = SeriesRef(
            i + 1, labels["agent"], name, {k: v for k, v in labels.items() if k != "agent"}
        )
        windows.add([(ref, j * STEP, v) for j, v in enumerate(values) if v is not None], N * STEP)
    result = evaluate(parse_expr(expr), windows, at)
    assert isinstance(result, list)
    return {frozenset(s.labels.items()): s.value for s in result}


def test_evaluator_matches_prometheus(tmp_path: Path) -> None:
    exprs = list(EXPRS)
    rules = load_rules_dir(Path(__file__).resolve().parents[3] / "rules")
    # The acceptance rule, as 0/1 answers so that it has a value either way: its two
    # comparisons (5 m and the last 30 s, each against the hour), and the whole rule.
    acceptance = [r.expr_text for r in rules if r.name == "CacheHitRatioDrop"]
    assert len(acceptance) == 1 and "haetae_cache_requests_total" in acceptance[0]
    exprs += [p.replace("<", "< bool") for p in acceptance[0].split(" and ")]
    exprs += acceptance
    exprs += [r.expr_text.split(" > ")[0] for r in rules if "histogram_quantile" in r.expr_text]
    theirs, _ = promtool_results(tmp_path, list(SERIES.values()), exprs, EVAL_TIMES)
    compared = 0
    for expr in exprs:
        for t in EVAL_TIMES:
            want = theirs.get((expr, seconds(t)), {})
            got = _ours(expr, seconds(t))
            assert got.keys() == want.keys(), (expr, t, got, want)
            for key, value in want.items():
                assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (expr, t, key)
            compared += len(want)
    # Samples compared, over every case (the rules' 30 s windows hold at most one of these
    # 60 s-apart samples: both engines answer nothing there, which the keys compare).
    assert compared >= 383


def test_rule_files_and_export_pass_promtool_check(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    folder = Path(__file__).resolve().parents[3] / "rules"
    exported = tmp_path / "exported.yml"

    exported.write_text(export_prometheus(load_rules_dir(folder)))
    files = [str(exported), *(str(p) for p in sorted(folder.glob("*.yml")))]
    proc = subprocess.run(
        [PROMTOOL, "check", "rules", *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


ERROR_CASES = {
    "a + on(x) b": "many-to-one matching must be explicit",
    "b + on(x) a": "on the right hand-side of the operation",
    "b + on(x) group_right a": None,  # fine: a is the "many" side
    "a + on(x) group_left b": None,
    "b + on(x) group_left a": "on the right hand-side of the operation",
    "a + on(x) group_left(y) b": "grouping labels must ensure unique matches",
    "a and on(x) b or b": None,  # set operators are many-to-many
}


def test_matching_errors_match_prometheus(tmp_path: Path) -> None:
    """Where Prometheus refuses to match (and where it does not), so do we."""
    series = {"a": [{"x": "1", "y": "1"}, {"x": "1", "y": "2"}], "b": [{"x": "1"}]}
    (tmp_path / "rules.yml").write_text("groups: []\n")
    doc = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": name + "{" + ",".join(f'{k}="{v}"' for k, v in ls.items()) + "}",
                        "values": "1",
                    }
                    for name, sets in series.items()
                    for ls in sets
                ],
                "promql_expr_test": [
                    {"expr": e, "eval_time": "0m", "exp_samples": []} for e in ERROR_CASES
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc))
    assert PROMTOOL is not None
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    errors = dict(
        re.findall(r'expr: "((?:[^"\\]|\\.)*)", time: \S+, err: (.*)', out.stdout + out.stderr)
    )
    windows = SeriesWindows(window_seconds=3600, max_points=100)
    refs = [(name, ls) for name, sets in series.items() for ls in sets]
    for i, (name, ls) in enumerate(refs):
        windows.add([(SeriesRef(i + 1, "a1", name, ls), 0.0, 1.0)], 1.0)
    for expr, fragment in ERROR_CASES.items():
        theirs = errors.get(expr)
        if fragment is None:
            assert theirs is None, (expr, theirs)
            evaluate(parse_expr(expr), windows, 0.0)
            continue
        assert theirs is not None and fragment in theirs, (expr, theirs)
        with pytest.raises(EvaluationError, match=re.escape(fragment)):
            evaluate(parse_expr(expr), windows, 0.0)
