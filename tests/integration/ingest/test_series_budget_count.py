"""The live-series budget counts each series once, even when the periodic recount runs while
another flush is creating series (a double count there refused a report at a limit that the
series stored exactly equalled), and two flushes in flight cannot together pass a limit."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping

import asyncpg
import pytest

from control_plane.config import IngestConfig, RetentionConfig
from control_plane.ingest import (
    Ingestor,
    Report,
    Sample,
    SeriesLimit,
    SeriesLimitExceeded,
    SeriesRef,
)
from control_plane.ingest import writer as writer_module
from control_plane.ingest.decode import labels_key
from control_plane.ingest.series import SeriesKey, count_per_agent
from control_plane.telemetry import ControlPlaneMetrics


def report(agent: str, first: int, n: int) -> Report:
    now = time.time()
    samples = []
    for i in range(first, first + n):
        labels = {"i": str(i)}
        samples.append(Sample("m", labels, labels_key(labels), now, float(i)))
    return Report(agent, uuid.uuid4(), None, now, samples)


async def test_a_recount_during_series_creation_counts_them_once(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    await pool.executemany("INSERT INTO agents (agent_id) VALUES ($1)", [("a0",), ("a1",)])
    cfg = IngestConfig(
        flush_interval_s=0.01,
        flush_max_samples=1,  # one report a flush
        series_count_refresh_s=1e-6,  # every flush recounts
        max_series_per_agent=20,
        max_series_global=20,
    )
    ingestor = Ingestor(pool, cfg, RetentionConfig(), ControlPlaneMetrics())
    a_created = asyncio.Event()
    recounts = 0
    recounted_meanwhile = asyncio.Event()

    async def counting(conn: asyncpg.Connection) -> dict[str, int]:
        nonlocal recounts
        counts = await count_per_agent(conn)
        recounts += 1
        if recounts > 1:
            # Let the creating flush resume only once this count is applied (call_soon runs
            # after the caller's synchronous set_live).
            asyncio.get_running_loop().call_soon(recounted_meanwhile.set)
        return counts

    resolve = ingestor.series.resolve_counting

    async def slow_resolve(
        conn: asyncpg.Connection, missing: Mapping[SeriesKey, Mapping[str, str]]
    ) -> tuple[dict[SeriesKey, SeriesRef], dict[str, int]]:
        out = await resolve(conn, missing)  # the rows are committed here
        if not a_created.is_set():
            a_created.set()
            # Another flush gets every chance to recount before these are counted up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recounted_meanwhile.wait(), 1.0)
        return out

    monkeypatch.setattr(writer_module, "count_per_agent", counting)
    monkeypatch.setattr(ingestor.series, "resolve_counting", slow_resolve)
    async with ingestor:
        first = asyncio.create_task(ingestor.submit(report("a0", 0, 10)))
        await a_created.wait()
        second = await ingestor.submit(report("a1", 10, 1))
        assert (await first).accepted == 10 and second.accepted == 1
        assert ingestor.budget.live_total == 11
        # Exactly up to the global limit: 11 + 9 = 20 series fit.
        third = await ingestor.submit(report("a1", 11, 9))
        assert third.accepted == 9
    assert await pool.fetchval("SELECT count(*) FROM series") == 20


async def test_two_flushes_in_flight_cannot_together_pass_a_limit(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    await pool.executemany("INSERT INTO agents (agent_id) VALUES ($1)", [("a0",), ("a1",)])
    cfg = IngestConfig(
        flush_interval_s=0.01,
        flush_max_samples=1,  # one report a flush
        max_series_per_agent=15,
        max_series_global=15,
    )
    ingestor = Ingestor(pool, cfg, RetentionConfig(), ControlPlaneMetrics())
    a_created = asyncio.Event()
    second_done = asyncio.Event()
    resolve = ingestor.series.resolve_counting

    async def slow_resolve(
        conn: asyncpg.Connection, missing: Mapping[SeriesKey, Mapping[str, str]]
    ) -> tuple[dict[SeriesKey, SeriesRef], dict[str, int]]:
        out = await resolve(conn, missing)
        if not a_created.is_set():
            a_created.set()
            # The second flush gets every chance to be admitted before these are counted.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(second_done.wait(), 1.0)
        return out

    monkeypatch.setattr(ingestor.series, "resolve_counting", slow_resolve)
    async with ingestor:
        first = asyncio.create_task(ingestor.submit(report("a0", 0, 10)))
        await a_created.wait()
        try:
            with pytest.raises(SeriesLimitExceeded) as refused:
                await ingestor.submit(report("a1", 10, 10))
        finally:
            second_done.set()
        assert refused.value.limit is SeriesLimit.GLOBAL
        assert (await first).accepted == 10
    assert await pool.fetchval("SELECT count(*) FROM series") == 10
