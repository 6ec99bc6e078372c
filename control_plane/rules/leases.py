"""Which evaluation shards this process owns: one PostgreSQL advisory lock per shard.

The locks live on one dedicated connection taken from the pool; if that connection breaks,
PostgreSQL releases them and another control plane takes the shards over, so two processes never
evaluate (and notify for) the same shard at once. The connection is checked before each pass.
"""

from __future__ import annotations

import contextlib
import logging
import zlib

import asyncpg

# Advisory-lock class for evaluation shards ("haetae rules"); the shard number is the object.
LOCK_CLASS = 0x4AE7_0001 & 0x7FFF_FFFF


def shard_of(agent_id: str, shards: int) -> int:
    return 0 if shards <= 1 else zlib.crc32(agent_id.encode()) % shards


class ShardLeases:
    def __init__(
        self, pool: asyncpg.Pool, shards: int, *, log: logging.Logger | None = None
    ) -> None:
        self._pool = pool
        self.shards = shards
        self._log = log or logging.getLogger("control_plane.rules")
        self._conn: asyncpg.Connection | None = None
        self.held: frozenset[int] = frozenset()

    async def refresh(self) -> frozenset[int]:
        """Check the held locks are still ours and try to take the free ones."""
        try:
            if self._conn is None:
                self._conn = await self._pool.acquire()
            elif self.held:
                await self._conn.fetchval("SELECT 1")
            held = set(self.held)
            for shard in range(self.shards):
                if shard not in held and await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, shard
                ):
                    held.add(shard)
                    self._log.info("took evaluation shard %d", shard)
            self.held = frozenset(held)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            if self.held:
                self._log.warning("lost the evaluation shards %s: %s", sorted(self.held), exc)
            await self._drop()
        return self.held

    async def close(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        self.held = frozenset()
        try:
            await conn.execute("SELECT pg_advisory_unlock_all()")
            await self._pool.release(conn)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            # Closing the session releases the locks too; it may be gone already.
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()

    async def _drop(self) -> None:
        self.held = frozenset()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(asyncpg.InterfaceError, OSError):
                conn.terminate()
                await self._pool.release(conn)
