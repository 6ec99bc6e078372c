"""Pruning ``series`` rows nothing has reported within the retention period.

A series is deleted when both hold:

* its ``last_seen_at`` is older than retention + ``SERIES_TOUCH_MAX_S`` + an hour. Ingest
  refreshes ``last_seen_at`` whenever it (re)resolves a series and never uses a cached id longer
  than ``SERIES_TOUCH_MAX_S`` without resolving it again (``ingest/series.py``), so no process
  can still be about to write samples under a series this old;
* no sample of it is left in ``samples`` (partitions past retention are dropped first, in the
  same maintenance round): a sample stamped ahead of its arrival keeps its series.

The table is walked in pages keyed on ``series_id``; each page is one short transaction that
locks its candidates with ``FOR UPDATE SKIP LOCKED`` (a row ingest is refreshing right now is
skipped, never waited for, and the row lock then keeps ingest's upsert from refreshing a row
being deleted: it waits for the commit and inserts a fresh row). Table locks: ``ROW
EXCLUSIVE`` on ``series`` and ``ACCESS SHARE`` on ``samples``, neither of which conflicts with
ingest's inserts and COPY.
"""

from __future__ import annotations

import asyncpg

from control_plane.ingest.series import SERIES_TOUCH_MAX_S

SLACK_S = 3600.0
PAGE = 1000

_CANDIDATES = """
SELECT series_id FROM series
WHERE series_id > $1 AND last_seen_at < to_timestamp($2)
ORDER BY series_id
LIMIT $3
FOR UPDATE SKIP LOCKED
"""
_DELETE = """
DELETE FROM series s
WHERE s.series_id = ANY($1::int8[])
  AND NOT EXISTS (SELECT 1 FROM samples x WHERE x.series_id = s.series_id)
"""


def prune_cutoff(now: float, retention_days: int) -> float:
    """Series last seen before this (unix seconds) may be pruned."""
    return now - retention_days * 86_400.0 - SERIES_TOUCH_MAX_S - SLACK_S


async def prune_series(
    conn: asyncpg.Connection, now: float, retention_days: int, *, page: int = PAGE
) -> int:
    """Delete the series unseen within retention and without samples; returns how many."""
    cutoff = prune_cutoff(now, retention_days)
    last = 0
    deleted = 0
    while True:
        async with conn.transaction():
            ids = [r[0] for r in await conn.fetch(_CANDIDATES, last, cutoff, page)]
            if ids:
                status = await conn.execute(_DELETE, ids)
                deleted += int(status.split()[-1])
        if len(ids) < page:
            return deleted
        last = ids[-1]
