"""Timeline tests of the rule engine on a real database with an injected clock: persisted
state across a restart, and two engines (two control planes) on one database."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from alerting_support import Clock

from control_plane.config import AlertingConfig
from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.rules import RuleEngine, rule_from_mapping
from control_plane.rules.state import AlertState, Transition

T0 = 1_800_000_000.0
REF = SeriesRef(1, "web-1", "demo_value", {"kind": "x"})


def windows() -> SeriesWindows:
    return SeriesWindows(window_seconds=3600, max_points=1000)


def config(**extra: object) -> AlertingConfig:
    values: dict[str, object] = {
        "rules_dir": None,
        "warmup_s": 0.0,
        "rules_reload_s": 3600.0,
        "persist_interval_s": 0.0,
    }
    values.update(extra)
    return AlertingConfig.model_validate(values)


async def put_rule(engine: RuleEngine, **spec: object) -> None:
    await engine.store.put_rule(
        rule_from_mapping({"name": "DemoHigh", "expr": "demo_value > 5", **spec})
    )
    await engine.reload()


def states(transitions: list[Transition]) -> list[tuple[str, str]]:
    return [(t.previous.value, t.current.value) for t in transitions]


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


async def test_restart_neither_refires_nor_forgets(pool: asyncpg.Pool, clock: Clock) -> None:
    w = windows()
    async with RuleEngine(pool, w, config(), clock=clock, background=False) as first:
        await put_rule(first, **{"for": "30s"})
        w.add([(REF, clock.now, 9.0)], clock.now)
        assert states(await first.evaluate_once()) == [("inactive", "pending")]
        clock.advance(30)
        w.add([(REF, clock.now, 9.0)], clock.now)
        assert states(await first.evaluate_once()) == [("pending", "firing")]

    # A new process: empty windows, warming up. The alert stays firing, nothing is recorded.
    clock.advance(5)
    fresh = windows()
    async with RuleEngine(
        pool, fresh, config(warmup_s=60), clock=clock, background=False
    ) as second:
        assert await second.evaluate_once() == []
        (alert,) = second.active_alerts()
        assert alert.state is AlertState.FIRING and alert.fired_at == T0 + 30
        # The data comes back while still warming up: still no new "firing".
        fresh.add([(REF, clock.now, 9.0)], clock.now)
        assert await second.evaluate_once() == []
        # Warm and the condition gone: now it resolves.
        clock.advance(61)
        fresh.add([(REF, clock.now, 1.0)], clock.now)
        assert states(await second.evaluate_once()) == [("firing", "resolved")]
    events = await pool.fetch("SELECT previous, state FROM alert_events ORDER BY event_id")
    assert [(e["previous"], e["state"]) for e in events] == [
        ("inactive", "pending"),
        ("pending", "firing"),
        ("firing", "resolved"),
    ]


async def test_pending_keeps_its_start_across_a_restart(pool: asyncpg.Pool, clock: Clock) -> None:
    w = windows()
    async with RuleEngine(pool, w, config(), clock=clock, background=False) as first:
        await put_rule(first, **{"for": "1m"})
        w.add([(REF, clock.now, 9.0)], clock.now)
        await first.evaluate_once()
    clock.advance(60)
    w.add([(REF, clock.now, 9.0)], clock.now)
    async with RuleEngine(pool, w, config(), clock=clock, background=False) as second:
        assert states(await second.evaluate_once()) == [("pending", "firing")]


async def test_two_engines_one_database_one_evaluator(pool: asyncpg.Pool, clock: Clock) -> None:
    w = windows()  # both see the same samples (as two replicas behind sticky routing might)
    w.add([(REF, clock.now, 9.0)], clock.now)
    async with RuleEngine(pool, w, config(), clock=clock, background=False) as a:
        await put_rule(a)
        async with RuleEngine(pool, w, config(), clock=clock, background=False) as b:
            await b.reload()
            got_a = await a.evaluate_once()
            got_b = await b.evaluate_once()
            assert (states(got_a), states(got_b)) == ([("inactive", "firing")], [])
            assert a.leases.held == {0} and b.leases.held == set()
            await a.close()
            # b takes the shard over and continues from the stored state: no second "firing".
            clock.advance(1)
            w.add([(REF, clock.now, 9.0)], clock.now)
            assert await b.evaluate_once() == []
            assert b.leases.held == {0}
            assert [x.state for x in b.active_alerts()] == [AlertState.FIRING]
    assert await pool.fetchval("SELECT count(*) FROM alert_events") == 1


async def test_shards_split_agents_between_engines(pool: asyncpg.Pool, clock: Clock) -> None:
    w = windows()
    refs = [SeriesRef(i, f"agent-{i}", "demo_value", {}) for i in range(1, 9)]
    w.add([(r, clock.now, 9.0) for r in refs], clock.now)
    async with RuleEngine(pool, w, config(shards=4), clock=clock, background=False) as a:
        await put_rule(a)
        fired = await a.evaluate_once()
        assert sorted(t.alert.labels["agent"] for t in fired) == [r.agent_id for r in refs]
        assert a.leases.held == {0, 1, 2, 3}
    rows = await pool.fetch("SELECT DISTINCT shard FROM alert_states")
    assert len(rows) > 1


async def test_deleted_rule_forgets_its_alerts(pool: asyncpg.Pool, clock: Clock) -> None:
    w = windows()
    w.add([(REF, clock.now, 9.0)], clock.now)
    async with RuleEngine(pool, w, config(), clock=clock, background=False) as engine:
        await put_rule(engine)
        await engine.evaluate_once()
        assert await engine.store.delete_rule("DemoHigh", clock.now)
        await engine.reload()
        assert await engine.evaluate_once() == []
        assert engine.active_alerts() == []
    assert await pool.fetchval("SELECT count(*) FROM alert_states") == 0
    last = await pool.fetchrow("SELECT previous, state FROM alert_events ORDER BY event_id DESC")
    assert last is not None and (last["previous"], last["state"]) == ("firing", "inactive")


async def test_a_bad_rule_file_edit_keeps_the_previous_rules(
    pool: asyncpg.Pool, clock: Clock, tmp_path: Path
) -> None:
    (tmp_path / "r.yml").write_text(
        "groups: [{name: g, rules: [{alert: FromFile, expr: demo_value > 5}]}]"
    )
    async with RuleEngine(
        pool, windows(), config(rules_dir=tmp_path), clock=clock, background=False
    ) as engine:
        assert set(engine.rules) == {"FromFile"}
        (tmp_path / "r.yml").write_text("groups: [{name: g, rules: [{alert: FromFile}]}]")
        await engine.reload()
        assert set(engine.rules) == {"FromFile"}
        (tmp_path / "r.yml").write_text(
            "groups: [{name: g, rules: [{alert: Renamed, expr: demo_value > 5}]}]"
        )
        await engine.reload()
        assert set(engine.rules) == {"Renamed"}
