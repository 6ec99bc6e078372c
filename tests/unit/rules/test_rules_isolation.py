"""One rule that raises, whatever it raises, is marked errored and counted; the other rules of
the pass are still evaluated (a real database, an injected clock)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from control_plane.config import AlertingConfig
from control_plane.ingest.windows import Point, SeriesRef, SeriesWindows
from control_plane.query.matchers import Matcher
from control_plane.rules import RuleEngine, rule_from_mapping
from control_plane.rules.health import Health

T0 = 1_800_000_000.0
REF = SeriesRef(1, "web-1", "demo_value", {"kind": "x"})


class BrokenFor:
    """The windows, except that reading one metric raises (a stand-in for any bug)."""

    def __init__(self, windows: SeriesWindows, broken: str) -> None:
        self.windows = windows
        self.broken = broken

    def select(self, name: str | None, matchers: Sequence[Matcher] = ()) -> list[SeriesRef]:
        if name == self.broken:
            raise ZeroDivisionError("x" * 10_000)
        return self.windows.select(name, matchers)

    def points(self, series_id: int, start: float, end: float) -> list[Point]:
        return self.windows.points(series_id, start, end)


def config() -> AlertingConfig:
    return AlertingConfig.model_validate(
        {"rules_dir": None, "warmup_s": 0.0, "rules_reload_s": 3600.0, "persist_interval_s": 0.0}
    )


async def test_a_raising_rule_does_not_stop_the_others(pool: asyncpg.Pool) -> None:
    windows = SeriesWindows(window_seconds=3600, max_points=100)
    source = BrokenFor(windows, "broken_metric")
    now = T0
    engine = RuleEngine(pool, source, config(), clock=lambda: now, background=False)
    async with engine:
        for name, expr in [("ABroken", "broken_metric > 0"), ("BHigh", "demo_value > 5")]:
            await engine.store.put_rule(rule_from_mapping({"name": name, "expr": expr}))
        await engine.reload()
        assert engine.health.get("BHigh").health is Health.UNKNOWN
        windows.add([(REF, now, 9.0)], now)
        transitions = await engine.evaluate_once()
        # The healthy rule (evaluated after the broken one) still fires.
        assert [(t.alert.rule, t.current.value) for t in transitions] == [("BHigh", "firing")]
        broken = engine.health.get("ABroken")
        assert broken.health is Health.ERR and broken.last_evaluation == now
        assert broken.last_error is not None and broken.last_error.startswith("ZeroDivisionError")
        assert len(broken.last_error) <= 500
        assert engine.health.get("BHigh").health is Health.OK
        failures = engine.metrics.registry.get_sample_value(
            "haetae_rule_evaluation_failures_total", {"rule": "ABroken"}
        )
        assert failures == 1.0

        # Fixed: healthy again; deleted: forgotten, its failure series dropped.
        source.broken = "nothing"
        now += 60
        await engine.evaluate_once()
        assert engine.health.get("ABroken").health is Health.OK
        await engine.store.delete_rule("ABroken", now)
        await engine.reload()
        assert engine.health.get("ABroken").health is Health.UNKNOWN
        assert (
            engine.metrics.registry.get_sample_value(
                "haetae_rule_evaluation_failures_total", {"rule": "ABroken"}
            )
            is None
        )
