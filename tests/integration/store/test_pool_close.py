"""Shutdown never waits forever on a PostgreSQL connection some task still holds."""

from __future__ import annotations

import time

import asyncpg
import pytest

from control_plane.app import close_pool
from control_plane.config import PostgresConfig
from control_plane.store import create_pool


async def test_a_held_connection_does_not_hang_close(db_dsn: str) -> None:
    pool = await create_pool(db_dsn, PostgresConfig(pool_min_size=1, pool_max_size=2))
    held = await pool.acquire()  # a retry loop that never gives its connection back
    started = time.monotonic()
    await close_pool(pool, timeout_s=0.5)
    assert time.monotonic() - started < 5  # generous: the bound is 0.5 s
    assert pool.is_closing()
    with pytest.raises(asyncpg.InterfaceError):  # the holder's connection is gone
        await held.fetchval("SELECT 1")


async def test_an_idle_pool_closes_cleanly(db_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    pool = await create_pool(db_dsn, PostgresConfig(pool_min_size=1, pool_max_size=2))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1
    await close_pool(pool, timeout_s=5)
    assert pool.is_closing()
    assert "terminating" not in caplog.text  # closed gracefully, not cut
