"""The timeline of the demo flip against rules/defaults.yml: the demo app serves ~20 requests a
second (scraped every 5 s), healthy for an hour, degraded for 3 minutes, then healthy again.
Every rule that fires for it must stop matching within 35 s of healthy (the notification path
adds at most one group_interval, 10 s in `haetae up`: resolved within 60 s, as promised), and
nothing may match while healthy (the short windows are noise-free: seeded real noise below).

Why the old rules took minutes: a rule over ``rate(...[5m])`` keeps the degraded samples in its
window for up to 5 minutes. HighLatencyP95 (p95 over 5 m > 2 s, ``for: 5m``) stays above 2 s
until fewer than 14 % of the window is degraded (about a third of degraded requests take over
2 s; p95 needs 5 %): 4.3 min after healthy, and its ``for: 5m`` made it fire 3.5 min after the
app was healthy again. With 30 s windows: 0.86 x 30 s = 26 s."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.rules.evaluator import evaluate
from control_plane.rules.files import load_rules_dir
from control_plane.rules.model import Rule

REPO_RULES = Path(__file__).resolve().parents[3] / "rules"
T0 = 1_700_000_000.0
STEP_S = 5.0
PER_STEP = 100  # requests per scrape interval (20 a second)
HEALTHY_S = 3600.0
DEGRADED_S = 180.0
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, float("inf"))
AGENT = "local-demo"
DEMO_RULES = ("CacheHitRatioDrop", "HighErrorRate", "HighLatencyP95")


class Demo:
    """The demo app's counters, as its agent reports them."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids = iter(range(1, 10_000))
        self.refs: dict[tuple[str, tuple[tuple[str, str], ...]], SeriesRef] = {}
        self.values: dict[int, tuple[SeriesRef, float]] = {}  # series id -> (ref, counter)

    def _ref(self, name: str, **labels: str) -> SeriesRef:
        key = (name, tuple(sorted(labels.items())))
        if key not in self.refs:
            self.refs[key] = SeriesRef(next(self.ids), AGENT, name, labels)
        return self.refs[key]

    def _inc(self, ref: SeriesRef, by: float = 1.0) -> None:
        _, value = self.values.get(ref.series_id, (ref, 0.0))
        self.values[ref.series_id] = (ref, value + by)

    def step(self, degraded: bool) -> None:
        rng = self.rng
        for _ in range(PER_STEP):
            error = rng.random() < (0.2 if degraded else 0.01)
            latency = rng.uniform(0.2, 3.0) if degraded else rng.expovariate(1 / 0.02)
            hit = rng.random() < (0.3 if degraded else 0.85)
            status = "500" if error else "200"
            self._inc(self._ref("demo_http_requests_total", path="/", status=status))
            for le in BUCKETS:
                bucket = self._ref(
                    "demo_http_request_duration_seconds_bucket", path="/", le=_le(le)
                )
                self._inc(bucket, 1.0 if latency <= le else 0.0)
            outcome = "hit" if hit else "miss"
            self._inc(
                self._ref("haetae_cache_requests_total", cache="demo", layer="l1", outcome=outcome)
            )
        # Every series reports each scrape, counters that did not move as well.
        for name, labels in (
            ("demo_http_requests_total", {"path": "/", "status": "200"}),
            ("demo_http_requests_total", {"path": "/", "status": "500"}),
            ("haetae_cache_requests_total", {"cache": "demo", "layer": "l1", "outcome": "hit"}),
            ("haetae_cache_requests_total", {"cache": "demo", "layer": "l1", "outcome": "miss"}),
        ):
            self._inc(self._ref(name, **labels), 0.0)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else f"{bound:g}"


def _rules() -> dict[str, Rule]:
    return {r.name: r for r in load_rules_dir(REPO_RULES) if r.name in DEMO_RULES}


def _timeline(seed: int) -> Iterator[tuple[float, bool, dict[str, bool]]]:
    """(seconds since the flip to healthy, degraded now, rule -> its expression matches)."""
    demo = Demo(seed)
    windows = SeriesWindows(window_seconds=7200, max_points=20_000)
    rules = _rules()
    steps = int((HEALTHY_S + DEGRADED_S + 120) / STEP_S)
    healthy_again = T0 + HEALTHY_S + DEGRADED_S
    for i in range(steps):
        now = T0 + i * STEP_S
        degraded = T0 + HEALTHY_S <= now < healthy_again
        demo.step(degraded)
        windows.add([(ref, now, value) for ref, value in demo.values.values()], now)
        if now < T0 + HEALTHY_S - 900:  # the first 45 minutes only fill the hour's window
            continue
        matching = {}
        for name, rule in rules.items():
            out = evaluate(rule.expr, windows, now)
            matching[name] = isinstance(out, list) and bool(out)
        yield now - healthy_again, degraded, matching


def test_the_demo_flip_fires_and_resolves_within_a_minute() -> None:
    rules = _rules()
    assert set(rules) == set(DEMO_RULES)
    for seed in (1, 2, 3):
        since: dict[str, float] = {}  # rule -> when its expression started matching
        fired: dict[str, float] = {}
        last_match: dict[str, float] = {}
        for t, degraded, matching in _timeline(seed):
            for name, match in matching.items():
                if not degraded and t < 0:
                    assert not match, (seed, name, t, "matched while healthy")
                if match:
                    since.setdefault(name, t)
                    last_match[name] = t
                    if t - since[name] >= rules[name].for_s:
                        fired.setdefault(name, t)
                else:
                    since.pop(name, None)
        # Each rule fired while the app was degraded (within its `for` plus a window's fill),
        assert set(fired) == set(DEMO_RULES), (seed, fired)
        assert all(-DEGRADED_S < t < 0 for t in fired.values()), (seed, fired)
        # and stopped matching well within a minute of healthy.
        assert all(t <= 35 for t in last_match.values()), (seed, last_match)
