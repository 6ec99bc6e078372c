"""A restart with back-filled windows: a ``rate()`` rule keeps firing without a new notification
(engine timeline with an injected clock, then the real control plane restarted on one
database), and the engine's first pass waits for the back-fill."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient
from alerting_support import Clock, Plane, alerting_config, eventually

from control_plane.app import create_app
from control_plane.appkeys import POOL
from control_plane.config import AlertingConfig, RetentionConfig
from control_plane.ingest.backfill import WindowBackfill
from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.maintenance import Maintenance
from control_plane.rules import RuleEngine, evaluate, rule_from_mapping
from control_plane.rules.context import WINDOW_BACKFILL
from control_plane.rules.span import needed_span
from control_plane.rules.state import AlertState, Transition

T0 = 1_800_000_000.0
REF = SeriesRef(1, "web-1", "reqs_total", {})
RULE = {"name": "Busy", "expr": "rate(reqs_total[10m]) > 1"}


def config(**extra: object) -> AlertingConfig:
    values: dict[str, object] = {
        "rules_dir": None,
        "warmup_s": 0.0,
        "rules_reload_s": 3600.0,
        "persist_interval_s": 0.0,
    }
    values.update(extra)
    return AlertingConfig.model_validate(values)


def windows() -> SeriesWindows:
    return SeriesWindows(window_seconds=3600, max_points=10_000)


async def ingest(pool: asyncpg.Pool, w: SeriesWindows, points: list[tuple[float, float]]) -> None:
    """What the Ingestor does: commit, then add to the windows."""
    await pool.executemany(
        "INSERT INTO samples VALUES (1, to_timestamp($1), $2)", [(t, v) for t, v in points]
    )
    w.add([(REF, t, v) for t, v in points], max(t for t, _ in points))


async def test_rate_rule_keeps_firing_across_a_restart(pool: asyncpg.Pool) -> None:
    await Maintenance(pool, RetentionConfig(retention_days=2), clock=lambda: T0).run_once()
    await pool.execute(
        """INSERT INTO series (series_id, agent_id, name, labels, labels_key, last_seen_at)
           OVERRIDING SYSTEM VALUE VALUES (1, 'web-1', 'reqs_total', '{}'::jsonb, '{}',
                                           to_timestamp($1))""",
        T0,
    )
    clock = Clock(T0)
    told: list[Transition] = []

    def listen(ts: Sequence[Transition]) -> None:
        told.extend(ts)

    first_windows = windows()
    # 10 minutes of a counter growing 2/s, a sample every 15 s
    await ingest(pool, first_windows, [(T0 - 600 + 15 * k, 30.0 * k) for k in range(41)])
    async with RuleEngine(pool, first_windows, config(), clock=clock, background=False) as first:
        first.listeners.append(listen)
        await first.store.put_rule(rule_from_mapping(RULE))
        await first.reload()
        await first.evaluate_once()
    assert [(t.previous.value, t.current.value) for t in told] == [("inactive", "firing")]

    # The process restarts 30 s later; the agent's next sample arrives.
    clock.advance(30)
    fresh = windows()
    await ingest(pool, fresh, [(T0 + 30, 30.0 * 43)])
    rule = rule_from_mapping(RULE)
    # Without the back-fill the rule would see one point: no value, so it would resolve.
    assert evaluate(rule.expr, fresh, clock.now) == []

    backfill = WindowBackfill(pool, fresh, clock=clock)
    span = needed_span([rule.expr], 300.0)
    assert span == 600.0
    result = await backfill.run(span)
    assert result.series == 1 and result.samples == 38  # (T0 - 570, T0]; the live one was held
    async with RuleEngine(pool, fresh, config(), clock=clock, background=False) as second:
        second.listeners.append(listen)
        assert await second.evaluate_once() == []
        (alert,) = second.active_alerts()
        assert alert.state is AlertState.FIRING and alert.fired_at == T0
        clock.advance(15)
        await ingest(pool, fresh, [(clock.now, 30.0 * 44)])
        assert await second.evaluate_once() == []
    assert len(told) == 1  # no second notification
    events = await pool.fetch("SELECT previous, state FROM alert_events ORDER BY event_id")
    assert [(e["previous"], e["state"]) for e in events] == [("inactive", "firing")]


async def test_first_pass_waits_for_the_backfill(pool: asyncpg.Pool) -> None:
    gate = asyncio.Event()
    engine = RuleEngine(pool, windows(), config(eval_interval_s=0.05, min_eval_interval_s=0.0))
    engine.gate = gate.wait
    async with engine:
        await asyncio.sleep(0.3)
        assert engine.passes == 0
        gate.set()
        await eventually(lambda: _passes(engine), within=5.0)


async def _passes(engine: RuleEngine) -> bool:
    return engine.passes > 0


FILE_RULE = """
groups:
  - name: restart
    rules:
      - alert: CounterRising
        expr: rate(test_reqs_total[1m]) > 1
        labels: {severity: info}
"""


async def test_control_plane_restart_keeps_a_rate_alert_firing(
    db_dsn: str,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "restart.yml").write_text(FILE_RULE)
    cfg = alerting_config(db_dsn, tmp_path, rules)
    counter = [0.0]

    async def report(plane: Plane, token: str) -> None:
        counter[0] += 50.0
        await plane.report("web-1", token, [("test_reqs_total", {}, counter[0])])

    client = await aiohttp_client(create_app(cfg))
    plane = Plane(client, (tmp_path / "admin.token").read_text().strip())
    token = await plane.enroll("web-1")
    for _ in range(8):
        await report(plane, token)
        await asyncio.sleep(0.1)

    async def firing(p: Plane) -> list[dict[str, Any]]:
        return [a for a in await p.active() if a["state"] == "firing"]

    await eventually(lambda: firing(plane))
    await client.close()

    # The same database, a new process: the windows come back from PostgreSQL.
    client = await aiohttp_client(create_app(cfg))
    plane = Plane(client, plane.admin_token)
    backfill = client.app[WINDOW_BACKFILL]
    await eventually(lambda: _done(backfill), within=10.0)
    assert backfill.result is not None and backfill.result.samples >= 8
    started = time.monotonic()
    while time.monotonic() - started < 1.5:  # several evaluation passes
        await report(plane, token)
        await asyncio.sleep(0.1)
    assert await firing(plane)
    events = await client.app[POOL].fetch(
        "SELECT previous, state FROM alert_events ORDER BY event_id"
    )
    assert [(e["previous"], e["state"]) for e in events] == [("inactive", "firing")]
    metrics = await (await client.get("/metrics")).text()
    assert "haetae_window_backfill_complete 1.0" in metrics
    assert "haetae_window_backfill_samples " in metrics
    assert "haetae_window_backfill_duration_seconds " in metrics


async def _done(backfill: WindowBackfill) -> bool:
    return backfill.done
