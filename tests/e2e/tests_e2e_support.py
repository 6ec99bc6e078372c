"""Counting helpers for the exactly-once checks."""

from __future__ import annotations

from typing import Any

import asyncpg

# A series the agent emits exactly once per report (one sample per cycle).
SERIES = "haetae_app_health_up"


async def assert_exactly_once(dsn: str, *, min_reports: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        seqs = [
            r["seq"]
            for r in await conn.fetch(
                "SELECT seq FROM ingested_reports WHERE agent_id = 'e2e-agent' ORDER BY seq"
            )
        ]
        assert len(seqs) >= min_reports, len(seqs)
        # The agent numbers its reports contiguously, across restarts too (it resumes after the
        # last spooled one): none lost means no gap, none twice means no repeat.
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        row = await conn.fetchrow(
            """SELECT count(*) AS n, count(DISTINCT s.ts) AS distinct_ts,
                      max(gap) AS max_gap
               FROM (SELECT ts, extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) AS gap
                     FROM samples JOIN series USING (series_id)
                     WHERE series.name = $1 AND series.agent_id = 'e2e-agent') s""",
            SERIES,
        )
        # one sample per report for this series: nothing duplicated, nothing missing
        assert row["n"] == len(seqs) == row["distinct_ts"], (dict(row), len(seqs))
        return {"reports": len(seqs), "max_gap_s": float(row["max_gap"] or 0)}
    finally:
        await conn.close()
