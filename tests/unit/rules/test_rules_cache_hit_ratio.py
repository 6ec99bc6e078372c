"""The default CacheHitRatioDrop rule reads haetae_cache_requests_total, the series every haetae
cache exports (demo app, agent-hosted L1, the control plane's own), per agent, cache and layer."""

from __future__ import annotations

from pathlib import Path

from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.rules.ast import Expr
from control_plane.rules.evaluator import evaluate
from control_plane.rules.files import load_rules_dir

REPO_RULES = Path(__file__).resolve().parents[3] / "rules"
T0 = 1_700_000_000.0
NAME = "haetae_cache_requests_total"


def _rule_expr() -> Expr:
    (rule,) = [r for r in load_rules_dir(REPO_RULES) if r.name == "CacheHitRatioDrop"]
    assert NAME in rule.expr_text
    return rule.expr


def _load(windows: SeriesWindows, agent: str, cache: str, rates: list[tuple[float, float]]) -> None:
    """Counters of hits and misses per 10 s step, ``rates`` giving (hits, misses) per step."""
    refs = {
        outcome: SeriesRef(
            hash((agent, cache, outcome)) & 0xFFFFFF,
            agent,
            NAME,
            {"cache": cache, "layer": "l1", "outcome": outcome},
        )
        for outcome in ("hit", "miss")
    }
    idle = SeriesRef(
        hash((agent, cache, "l2")) & 0xFFFFFF,
        agent,
        NAME,
        {"cache": cache, "layer": "l2", "outcome": "hit"},
    )
    hits = misses = 0.0
    points = []
    for i, (h, m) in enumerate(rates):
        hits += h
        misses += m
        ts = T0 + 10 * i
        points += [(refs["hit"], ts, hits), (refs["miss"], ts, misses), (idle, ts, 0.0)]
    windows.add(points, T0 + 10 * len(rates))


def test_default_rule_fires_on_a_drop_of_the_reported_cache_hit_ratio() -> None:
    expr = _rule_expr()
    windows = SeriesWindows(window_seconds=7200, max_points=10_000)
    healthy = [(17.0, 3.0)] * 360  # an hour at 85 %
    # The demo app's cache (through its agent) drops to 30 %; the control plane's stays healthy.
    _load(windows, "demo-agent", "demo", [*healthy, *[(6.0, 14.0)] * 30])
    _load(windows, "control-plane", "control_plane", healthy + healthy[:30])
    at = T0 + 10 * 389
    out = evaluate(expr, windows, at)
    assert isinstance(out, list)
    fired = {(s.labels["agent"], s.labels["cache"], s.labels["layer"]) for s in out}
    assert fired == {("demo-agent", "demo", "l1")}
    # Before the drop nothing fires (idle L2 series give 0/0, never a match).
    assert evaluate(expr, windows, T0 + 10 * 359) == []


def test_a_cold_cache_with_no_hit_yet_is_no_drop() -> None:
    """0 hits against 0 hits: both ratios are 0; the rule compares strictly, so it stays quiet."""
    windows = SeriesWindows(window_seconds=7200, max_points=10_000)
    _load(windows, "demo-agent", "demo", [(0.0, 20.0)] * 30)
    assert evaluate(_rule_expr(), windows, T0 + 10 * 29) == []
