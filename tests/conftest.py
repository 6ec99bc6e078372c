"""Real servers for every test run: embedded PostgreSQL and Redis by default, or external ones
named by ``HAETAE_TEST_POSTGRES_DSN`` / ``HAETAE_TEST_REDIS_URL``.

Each test that asks for ``db_dsn`` gets its own database cloned from a migrated template, so tests
never see each other's rows and the migrations run once per session.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from tests_support import with_database

from control_plane.config import PostgresConfig
from control_plane.store import apply_migrations, create_pool
from haetae.embedded import EmbeddedPostgres, EmbeddedRedis

TEMPLATE_DB = f"haetae_tpl_{os.getpid()}"


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="haetae-test-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def pg_server_dsn(servers_dir: Path) -> Iterator[str]:
    external = os.environ.get("HAETAE_TEST_POSTGRES_DSN")
    if external:
        yield external
        return
    server = EmbeddedPostgres(servers_dir / "pg", cleanup="delete", database="postgres")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server_dsn: str) -> Iterator[str]:
    async def build() -> None:
        conn = await asyncpg.connect(pg_server_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await conn.close()
        tpl = await asyncpg.connect(with_database(pg_server_dsn, TEMPLATE_DB))
        try:
            await apply_migrations(tpl)
        finally:
            await tpl.close()

    asyncio.run(build())
    yield TEMPLATE_DB

    async def drop() -> None:
        conn = await asyncpg.connect(pg_server_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
async def db_dsn(pg_server_dsn: str, pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test only."""
    name = f"haetae_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    finally:
        await conn.close()
    yield with_database(pg_server_dsn, name)
    conn = await asyncpg.connect(pg_server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_dsn, PostgresConfig(pool_min_size=1, pool_max_size=5))
    yield p
    await p.close()


@pytest.fixture(scope="session")
def redis_url(servers_dir: Path) -> Iterator[str]:
    external = os.environ.get("HAETAE_TEST_REDIS_URL")
    if external:
        yield external
        return
    server = EmbeddedRedis(servers_dir / "redis", persist=False)
    yield server.start()
    server.stop()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()
