"""The asyncpg pool, configured once."""

from __future__ import annotations

import asyncpg
import orjson

from control_plane.config import PostgresConfig


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out through orjson: dicts go in, dicts come out.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def create_pool(dsn: str, cfg: PostgresConfig) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=cfg.pool_min_size,
        max_size=cfg.pool_max_size,
        command_timeout=cfg.command_timeout_s,
        timeout=cfg.connect_timeout_s,
        init=_init_connection,
        # Idle connections are recycled so a Postgres restart heals by itself.
        max_inactive_connection_lifetime=300.0,
    )
    assert pool is not None
    return pool
