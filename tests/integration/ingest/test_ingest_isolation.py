"""A flush PostgreSQL refuses is split until only the report at fault fails (issue 9). Reports
are built here without decode, as if decode had missed something."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from control_plane.config import IngestConfig, RetentionConfig
from control_plane.ingest import Ingestor, IngestRejected, IngestUnavailable, Report, Sample
from control_plane.ingest.decode import labels_key
from control_plane.telemetry import ControlPlaneMetrics


def report(agent: str, labels: dict[str, str], value: float = 1.0) -> Report:
    now = time.time()
    sample = Sample("m", labels, labels_key(labels), now, value)
    return Report(agent, uuid.uuid4(), None, now, [sample])


@pytest.fixture
async def ingestor(pool: asyncpg.Pool) -> Ingestor:
    await pool.executemany(
        "INSERT INTO agents (agent_id) VALUES ($1)", [(f"a{i}",) for i in range(12)]
    )
    # A long linger: everything submitted together lands in one flush.
    cfg = IngestConfig(flush_interval_s=0.3)
    return Ingestor(pool, cfg, RetentionConfig(), ControlPlaneMetrics())


@pytest.mark.parametrize(
    "poison",
    [{"k": "x\u0000y"}, {f"l{i}": "v" * 4096 for i in range(64)}],
    ids=["nul", "index-row-too-big"],
)
async def test_only_the_guilty_report_of_a_flush_fails(
    ingestor: Ingestor, pool: asyncpg.Pool, poison: dict[str, str]
) -> None:
    good = [report(f"a{i}", {"i": str(i)}) for i in range(11)]
    bad = report("a11", poison)
    batch = [*good[:5], bad, *good[5:]]
    async with ingestor:
        outcomes = await asyncio.gather(
            *(ingestor.submit(r) for r in batch), return_exceptions=True
        )
    assert isinstance(outcomes[5], IngestRejected)
    assert outcomes[5].status == 422 and "PostgreSQL refused" in outcomes[5].detail
    assert "\n" not in outcomes[5].detail
    assert [o.accepted for o in outcomes if not isinstance(o, BaseException)] == [1] * 11
    stored = await pool.fetch("SELECT agent_id FROM series JOIN samples USING (series_id)")
    assert sorted(r["agent_id"] for r in stored) == sorted(f"a{i}" for i in range(11))
    reports = await pool.fetchval("SELECT count(*) FROM ingested_reports")
    assert reports == 11


async def test_a_lost_database_still_fails_everyone_retryably(
    ingestor: Ingestor, pool: asyncpg.Pool
) -> None:
    """Not a data error: no bisecting, every report of the flush is told to retry."""
    await pool.execute(
        """CREATE FUNCTION down() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'connection lost' USING ERRCODE = '08006'; END $$;
           CREATE TRIGGER down BEFORE INSERT ON samples FOR EACH ROW EXECUTE FUNCTION down();"""
    )
    batch = [report(f"a{i}", {"i": str(i)}) for i in range(4)]
    async with ingestor:
        outcomes = await asyncio.gather(
            *(ingestor.submit(r) for r in batch), return_exceptions=True
        )
    assert all(isinstance(o, IngestUnavailable) for o in outcomes)
    assert await pool.fetchval("SELECT count(*) FROM ingested_reports") == 0
