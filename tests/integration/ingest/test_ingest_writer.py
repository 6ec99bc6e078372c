"""Group commit against a real PostgreSQL: durability, idempotency, failures, partitions."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from control_plane.config import IngestConfig, RetentionConfig
from control_plane.ingest import Ingestor, IngestUnavailable, Report, Sample, SubmitResult
from control_plane.ingest.decode import labels_key
from control_plane.store import partitions
from control_plane.telemetry import ControlPlaneMetrics

DAY = 86_400.0


def make_report(
    agent: str = "web-1",
    n: int = 3,
    *,
    ts: float | None = None,
    value: float = 1.0,
    name: str = "m",
    report_id: uuid.UUID | None = None,
    seq: int | None = 1,
) -> Report:
    at = time.time() if ts is None else ts
    samples = [
        Sample(name, {"i": str(i)}, labels_key({"i": str(i)}), at, value + i) for i in range(n)
    ]
    return Report(agent, report_id or uuid.uuid4(), seq, at, samples)


async def add_agents(pool: asyncpg.Pool, *agents: str) -> None:
    await pool.executemany("INSERT INTO agents (agent_id) VALUES ($1)", [(a,) for a in agents])


async def count(pool: asyncpg.Pool, table: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))


def sample_value(metrics: ControlPlaneMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


IngestorFactory = Callable[..., Ingestor]


@pytest.fixture
async def make_ingestor(pool: asyncpg.Pool) -> AsyncIterator[IngestorFactory]:
    started: list[Ingestor] = []

    def make(
        flush_interval_s: float = 0.02, metrics: ControlPlaneMetrics | None = None, **kw: object
    ) -> Ingestor:
        cfg = IngestConfig(flush_interval_s=flush_interval_s, **kw)  # type: ignore[arg-type]
        metrics = metrics or ControlPlaneMetrics()
        ing = Ingestor(pool, cfg, RetentionConfig(retention_days=14), metrics)
        started.append(ing)
        return ing

    yield make
    for ing in started:
        await ing.close()


async def test_a_report_is_stored_once_committed(
    pool: asyncpg.Pool, make_ingestor: IngestorFactory
) -> None:
    await add_agents(pool, "web-1")
    report = make_report(n=5, seq=41)
    async with make_ingestor() as ing:
        assert await ing.submit(report) == SubmitResult(5, False)
        assert await count(pool, "samples") == 5
        assert await count(pool, "series") == 5
        row = await pool.fetchrow("SELECT * FROM ingested_reports")
        assert (row["agent_id"], row["report_id"], row["seq"], row["sample_count"]) == (
            "web-1",
            report.report_id,
            41,
            5,
        )
        agent = await pool.fetchrow("SELECT last_seen_at, last_seq FROM agents")
        assert agent["last_seq"] == 41 and agent["last_seen_at"] is not None
        # the window holds exactly the committed samples
        refs = ing.windows.select("m")
        assert sorted(r.labels["i"] for r in refs) == ["0", "1", "2", "3", "4"]
        values = await pool.fetch(
            "SELECT s.labels->>'i' AS i, x.value FROM samples x JOIN series s USING (series_id)"
        )
        assert sorted((r["i"], r["value"]) for r in values) == [(str(i), 1.0 + i) for i in range(5)]
        # series ids are cached: a second report for the same series adds no series rows
        assert await ing.submit(make_report(n=5)) == SubmitResult(5, False)
        assert await count(pool, "series") == 5


async def test_the_same_report_twice_is_stored_once(
    pool: asyncpg.Pool, make_ingestor: IngestorFactory
) -> None:
    await add_agents(pool, "web-1")
    report = make_report(n=4, value=1.0)
    retry = make_report(n=4, value=99.0, report_id=report.report_id)
    async with make_ingestor() as ing:
        assert await ing.submit(report) == SubmitResult(4, False)
        assert await ing.submit(retry) == SubmitResult(0, True)
    assert await count(pool, "samples") == 4
    assert await count(pool, "ingested_reports") == 1
    # the duplicate never reached the evaluation windows
    pts = [p for r in ing.windows.select("m") for p in ing.windows.points(r.series_id, 0, 2e9)]
    assert sorted(v for _, v in pts) == [1.0, 2.0, 3.0, 4.0]


async def test_two_copies_in_one_batch_are_stored_once(
    pool: asyncpg.Pool, make_ingestor: IngestorFactory
) -> None:
    await add_agents(pool, "web-1")
    report = make_report(n=3)
    # a long linger puts both copies in the same flush
    async with make_ingestor(flush_interval_s=0.3) as ing:
        results = await asyncio.gather(ing.submit(report), ing.submit(report))
    assert sorted(results) == [SubmitResult(0, True), SubmitResult(3, False)]
    assert await count(pool, "samples") == 3
    assert await count(pool, "ingested_reports") == 1


async def test_a_retry_racing_its_original_on_another_replica_is_stored_once(
    pool: asyncpg.Pool, make_ingestor: IngestorFactory
) -> None:
    await add_agents(pool, "web-1")
    reports = [make_report(n=2) for _ in range(20)]
    async with (
        make_ingestor(flush_interval_s=0.001) as a,
        make_ingestor(flush_interval_s=0.001) as b,
    ):
        results = await asyncio.gather(*(ing.submit(r) for r in reports for ing in (a, b)))
    for first, second in zip(results[::2], results[1::2], strict=True):
        assert sorted([first, second]) == [SubmitResult(0, True), SubmitResult(2, False)]
    assert await count(pool, "samples") == 40
    assert await count(pool, "ingested_reports") == 20


async def test_group_commit_with_many_concurrent_submitters(
    pool: asyncpg.Pool, make_ingestor: IngestorFactory
) -> None:
    agents = [f"agent-{i}" for i in range(20)]
    await add_agents(pool, *agents)
    reports = [make_report(a, n=50, seq=k) for k in range(10) for a in agents]
    metrics = ControlPlaneMetrics()
    async with make_ingestor(flush_interval_s=0.05, metrics=metrics) as ing:
        results = await asyncio.gather(*(ing.submit(r) for r in reports))
    flush_count = sample_value(metrics, "haetae_ingest_flush_duration_seconds_count")
    assert results == [SubmitResult(50, False)] * 200
    assert await count(pool, "samples") == 200 * 50
    assert await count(pool, "ingested_reports") == 200
    assert flush_count < 20  # 200 reports went out in a handful of transactions
    seqs = {r["agent_id"]: r["last_seq"] for r in await pool.fetch("SELECT * FROM agents")}
    assert seqs == {a: 9 for a in agents}


async def test_a_database_error_mid_flush_leaves_nothing_half_written(
    pool: asyncpg.Pool, make_ingestor: IngestorFactory
) -> None:
    await add_agents(pool, "web-1")
    # The COPY fails at the poisoned row, after the report ids were inserted.
    await pool.execute(
        """CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.value = 666 THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$;
           CREATE TRIGGER poison BEFORE INSERT ON samples FOR EACH ROW EXECUTE FUNCTION poison();"""
    )
    good = make_report(n=3, value=1.0)
    bad = make_report(n=3, value=664.0)  # its third sample is 666
    metrics = ControlPlaneMetrics()
    async with make_ingestor(flush_interval_s=0.3, metrics=metrics) as ing:
        outcomes = await asyncio.gather(ing.submit(good), ing.submit(bad), return_exceptions=True)
        assert all(isinstance(o, IngestUnavailable) for o in outcomes)
        assert await count(pool, "samples") == 0
        assert await count(pool, "ingested_reports") == 0
        assert await pool.fetchval("SELECT last_seen_at FROM agents") is None
        assert len(ing.windows) == 0
        assert sample_value(metrics, "haetae_ingest_reports_total", outcome="failed") == 2
        # The agents retry once the fault is gone: everything arrives, exactly once.
        await pool.execute("DROP TRIGGER poison ON samples")
        assert await ing.submit(good) == SubmitResult(3, False)
        assert await ing.submit(bad) == SubmitResult(3, False)
    assert await count(pool, "samples") == 6


async def test_a_connection_lost_mid_flush_fails_the_batch_and_the_next_one_succeeds(
    pool: asyncpg.Pool, make_ingestor: IngestorFactory
) -> None:
    await add_agents(pool, "web-1")
    await pool.execute(
        """CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.value = 7 THEN PERFORM pg_sleep(30); END IF; RETURN NEW; END $$;
           CREATE TRIGGER stall BEFORE INSERT ON samples FOR EACH ROW EXECUTE FUNCTION stall();"""
    )
    stalled = make_report(n=2, value=6.0)  # the second sample is 7
    async with make_ingestor() as ing:
        pending = asyncio.ensure_future(ing.submit(stalled))
        for _ in range(200):
            pid = await pool.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
            )
            if pid:
                break
            await asyncio.sleep(0.02)
        assert pid, "the flush never reached the stalled row"
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(IngestUnavailable):
            await pending
        assert await count(pool, "ingested_reports") == 0
        await pool.execute("DROP TRIGGER stall ON samples")
        assert await ing.submit(stalled) == SubmitResult(2, False)
    assert await count(pool, "samples") == 2


async def test_partitions_are_created_on_demand_and_old_samples_expire(
    pool: asyncpg.Pool, make_ingestor: IngestorFactory
) -> None:
    await add_agents(pool, "web-1")
    now = time.time()
    async with pool.acquire() as conn:
        assert await partitions.existing_partitions(conn) == []
    metrics = ControlPlaneMetrics()
    async with make_ingestor(metrics=metrics) as ing:
        # five days ago: no partition yet, within retention -> created and stored
        assert await ing.submit(make_report(n=2, ts=now - 5 * DAY)) == SubmitResult(2, False)
        # 20 days ago: past the 14-day retention -> accepted, counted, not stored
        old = make_report(n=3, ts=now - 20 * DAY)
        assert await ing.submit(old) == SubmitResult(3, False)
    assert sample_value(metrics, "haetae_ingest_samples_expired_total") == 3
    assert sample_value(metrics, "haetae_ingest_samples_total") == 2
    assert await count(pool, "samples") == 2
    async with pool.acquire() as conn:
        days = await partitions.existing_partitions(conn)
    assert days == [partitions.day_of(now - 5 * DAY)]
    # the expired report is still recorded, so its retry is a duplicate
    assert await count(pool, "ingested_reports") == 2


async def test_backpressure_and_shutdown(
    pool: asyncpg.Pool, make_ingestor: IngestorFactory
) -> None:
    await add_agents(pool, "web-1")
    ing = make_ingestor(flush_interval_s=5.0, flush_max_samples=10, max_samples_per_report=10)
    async with ing:
        first = [asyncio.ensure_future(ing.submit(make_report(n=10))) for _ in range(4)]
        await asyncio.sleep(0)
        with pytest.raises(IngestUnavailable, match="overloaded"):
            await ing.submit(make_report(n=10))
    # leaving the context flushed everything that was accepted
    assert [f.result() for f in first] == [SubmitResult(10, False)] * 4
    assert await count(pool, "samples") == 40
    with pytest.raises(IngestUnavailable):
        await ing.submit(make_report())


async def test_an_urgent_report_is_committed_without_lingering(
    pool: asyncpg.Pool, make_ingestor: IngestorFactory
) -> None:
    await add_agents(pool, "web-1")
    async with make_ingestor(flush_interval_s=5.0) as ing:
        urgent = make_report(n=1)
        urgent.urgent = True
        started = time.monotonic()
        assert await asyncio.wait_for(ing.submit(urgent), 4.0) == SubmitResult(1, False)
        assert time.monotonic() - started < 2.0  # not the 5 s linger
        assert await count(pool, "samples") == 1
