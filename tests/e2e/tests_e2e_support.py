"""Counting helpers for the exactly-once checks."""

from __future__ import annotations

from typing import Any

import asyncpg

# A series the agent emits exactly once per report (one sample per cycle).
SERIES = "haetae_app_health_up"


def runs(seqs: list[int]) -> list[list[int]]:
    """Split sequence numbers into contiguous runs. The agent reserves sequence numbers in
    blocks, so a restart starts a new run at the next block; within one run a gap is a loss."""
    out: list[list[int]] = []
    for seq in seqs:
        if out and seq == out[-1][-1] + 1:
            out[-1].append(seq)
        else:
            out.append([seq])
    return out


async def assert_exactly_once(
    dsn: str, *, min_reports: int, agent_starts: int = 1
) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        seqs = [
            r["seq"]
            for r in await conn.fetch(
                "SELECT seq FROM ingested_reports WHERE agent_id = 'e2e-agent' ORDER BY seq"
            )
        ]
        assert len(seqs) >= min_reports, len(seqs)
        # none twice: unique; none lost: contiguous within each run of the agent
        assert len(set(seqs)) == len(seqs), seqs
        assert len(runs(seqs)) == agent_starts, seqs
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
