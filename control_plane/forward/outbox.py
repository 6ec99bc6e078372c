"""The durable outbox of committed samples, in PostgreSQL (table ``forward_outbox``).

Why an outbox row per commit, written in the commit's transaction: a commit is forwarded if and
only if it happened (a crash between the two cannot lose or invent samples), and ingest pays
one small INSERT per flush (~16 bytes a sample, stored out of line without compression) and
nothing while forwarding is off. A cursor over ``samples`` would cost nothing at ingest but
``samples`` has no commit order to follow (concurrent flushes commit out of any order a column
could give), and reading rows back per series costs more than the insert saves.

Replicas take rows with ``FOR UPDATE SKIP LOCKED`` and stamp a lease (``claimed_by``,
``claimed_until``): no two replicas send the same rows; rows of a replica that died are taken
again once its lease has run out; a row is deleted only after the store acknowledged it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import asyncpg

from control_plane.forward import payload
from control_plane.ingest.batch import PreparedReport

_APPEND = "INSERT INTO forward_outbox (sample_count, payload) VALUES ($1, $2)"
_CLAIM = """
WITH c AS (
    SELECT id FROM forward_outbox
    WHERE claimed_until IS NULL OR claimed_until < now()
    ORDER BY id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE forward_outbox o
SET claimed_by = $1, claimed_until = now() + make_interval(secs => $3)
FROM c WHERE o.id = c.id
RETURNING o.id, o.sample_count, o.payload, extract(epoch FROM o.committed_at)::float8 AS at
"""
_RENEW = """
UPDATE forward_outbox SET claimed_until = now() + make_interval(secs => $3)
WHERE id = ANY($2::int8[]) AND claimed_by = $1
"""
_DONE = "DELETE FROM forward_outbox WHERE id = ANY($2::int8[]) AND claimed_by = $1"
_RELEASE = """
UPDATE forward_outbox SET claimed_by = NULL, claimed_until = NULL
WHERE id = ANY($2::int8[]) AND claimed_by = $1
"""
_STATS = """
SELECT coalesce(sum(sample_count), 0)::int8 AS pending,
       coalesce(extract(epoch FROM now() - min(committed_at)), 0)::float8 AS lag
FROM forward_outbox
"""
# One trimmer at a time across replicas (transaction-scoped; arbitrary, stable key).
_TRIM_LOCK = 0x48AEF0D
_TRIM = """
DELETE FROM forward_outbox WHERE id IN (
    SELECT id FROM forward_outbox
    WHERE claimed_until IS NULL OR claimed_until < now()
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED)
RETURNING sample_count
"""
_TRIM_ROWS = 500


class Row(NamedTuple):
    id: int
    sample_count: int
    payload: bytes
    committed_at: float  # unix seconds


class Stats(NamedTuple):
    pending_samples: int
    lag_s: float


async def append(conn: asyncpg.Connection, new: list[PreparedReport]) -> None:
    """The ingest transaction stage: record the commit's newly stored samples."""
    count, body = payload.encode(new)
    if count:
        await conn.execute(_APPEND, count, body)


class Outbox:
    """The forwarder's side of the table, as one replica (``owner``)."""

    def __init__(self, pool: asyncpg.Pool, owner: str, lease_s: float) -> None:
        self._pool = pool
        self.owner = owner
        self.lease_s = lease_s

    async def claim(self, max_rows: int) -> list[Row]:
        rows = await self._pool.fetch(_CLAIM, self.owner, max_rows, self.lease_s)
        out = [Row(r["id"], r["sample_count"], r["payload"], r["at"]) for r in rows]
        out.sort()
        return out

    async def renew(self, ids: Sequence[int]) -> bool:
        """Extend the lease; False when another replica has taken the rows meanwhile."""
        status = await self._pool.execute(_RENEW, self.owner, list(ids), self.lease_s)
        return _affected(status) == len(ids)

    async def done(self, ids: Sequence[int]) -> None:
        await self._pool.execute(_DONE, self.owner, list(ids))

    async def release(self, ids: Sequence[int]) -> None:
        await self._pool.execute(_RELEASE, self.owner, list(ids))

    async def stats(self) -> Stats:
        row = await self._pool.fetchrow(_STATS)
        assert row is not None
        return Stats(row["pending"], row["lag"])

    async def trim(self, excess: int) -> int:
        """Delete the oldest unclaimed rows until ``excess`` samples are gone (or none is
        left to take); returns the samples deleted. Skipped while another replica trims."""
        deleted = 0
        per_row = 0.0  # learnt from the first row: then delete about what is in excess
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _TRIM_LOCK):
                return 0
            while deleted < excess:
                left = excess - deleted
                limit = 1 if not per_row else max(1, min(_TRIM_ROWS, int(left / per_row)))
                rows = await conn.fetch(_TRIM, limit)
                if not rows:
                    break
                counts = [r["sample_count"] for r in rows]
                deleted += sum(counts)
                per_row = sum(counts) / len(counts)
        return deleted


def _affected(status: str) -> int:
    """The row count of an asyncpg command status ("UPDATE 3")."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0
