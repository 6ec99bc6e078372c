"""The windows' start-up back-fill from a real PostgreSQL: what it loads, in pages, merged with
live ingest, and the gate the rule engine waits on."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import orjson
import pytest

from control_plane.config import RetentionConfig
from control_plane.ingest.backfill import BackfillMetrics, WindowBackfill
from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.maintenance import Maintenance

NOW = float(int(time.time()))


async def add_series(pool: asyncpg.Pool, sid: int, name: str, labels: dict[str, str]) -> SeriesRef:
    key = orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode()
    await pool.execute(
        """INSERT INTO series (series_id, agent_id, name, labels, labels_key)
           OVERRIDING SYSTEM VALUE VALUES ($1, 'web-1', $2, $3::text::jsonb, $4)""",
        sid,
        name,
        key,
        key,
    )
    return SeriesRef(sid, "web-1", name, labels)


async def add_samples(pool: asyncpg.Pool, sid: int, points: list[tuple[float, float]]) -> None:
    await pool.executemany(
        "INSERT INTO samples VALUES ($1, to_timestamp($2), $3)",
        [(sid, t, v) for t, v in points],
    )


@pytest.fixture
async def db(pool: asyncpg.Pool) -> asyncpg.Pool:
    # today's partitions (and yesterday's: the span may cross midnight)
    await Maintenance(pool, RetentionConfig(retention_days=2), clock=lambda: NOW).run_once()
    return pool


def windows() -> SeriesWindows:
    return SeriesWindows(window_seconds=3600, max_points=10_000)


async def test_backfill_loads_the_span_of_every_series_in_pages(db: asyncpg.Pool) -> None:
    refs = [await add_series(db, i, "m", {"i": str(i)}) for i in range(1, 8)]
    for ref in refs:
        # every 10 s over the last 20 min, with a fractional second to check precision
        await add_samples(
            db,
            ref.series_id,
            [(NOW - 1200 + 10 * k + 0.25, ref.series_id * 1000.0 + k) for k in range(121)],
        )
    old = await add_series(db, 50, "m", {"i": "old"})
    await add_samples(db, 50, [(NOW - 900, 1.0)])  # only before the span
    w = windows()
    metrics = BackfillMetrics()
    backfill = WindowBackfill(db, w, clock=lambda: NOW, metrics=metrics, series_page=3)
    result = await backfill.run(600.0)
    assert result.complete and result.series == 7
    assert result.samples == 7 * 61  # k = 60..120: ts in (NOW - 600, NOW + 0.25]
    assert sorted(r.series_id for r in w.select("m")) == [1, 2, 3, 4, 5, 6, 7]
    pts = w.points(3, 0, NOW + 10)
    assert pts == [(NOW - 1200 + 10 * k + 0.25, 3000.0 + k) for k in range(60, 121)]
    assert w.points(old.series_id, 0, NOW + 10) == []


async def test_backfill_merges_with_what_ingest_added_meanwhile(db: asyncpg.Pool) -> None:
    ref = await add_series(db, 1, "m", {})
    stored = [(NOW - 30.0 + k, float(k)) for k in range(30)]
    await add_samples(db, 1, stored)
    w = windows()
    # ingest already put the newest stored point and two newer ones in the window
    w.add([(ref, NOW - 1.0, 29.0), (ref, NOW, 30.0), (ref, NOW + 1.0, 31.0)], NOW)
    result = await WindowBackfill(db, w, clock=lambda: NOW).run(3600.0)
    assert result.samples == 29
    assert w.points(1, 0, NOW + 10) == [*stored, (NOW, 30.0), (NOW + 1.0, 31.0)]


async def test_gate_opens_when_done_or_times_out(
    db: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    await add_series(db, 1, "m", {})
    await add_samples(db, 1, [(NOW - 5.0, 1.0)])
    metrics = BackfillMetrics()
    backfill = WindowBackfill(db, windows(), clock=lambda: NOW, metrics=metrics)
    with caplog.at_level(logging.WARNING):
        assert await backfill.wait(0.05) is False  # never started: times out and says so
    assert "not finished" in caplog.text
    assert metrics.complete._value.get() == 0  # type: ignore[attr-defined]
    backfill.start(60.0)
    assert await backfill.wait(10.0) is True
    assert backfill.result is not None and backfill.result.samples == 1
    assert metrics.samples._value.get() == 1  # type: ignore[attr-defined]
    assert metrics.complete._value.get() == 1  # type: ignore[attr-defined]
    assert metrics.duration._value.get() > 0  # type: ignore[attr-defined]
    await backfill.close()


async def test_nothing_to_load_opens_the_gate_at_once(db: asyncpg.Pool) -> None:
    backfill = WindowBackfill(db, windows())
    backfill.start(0.0)
    assert backfill.done
    assert await asyncio.wait_for(backfill.wait(1.0), 1.0)
