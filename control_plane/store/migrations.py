"""Versioned SQL migrations: ``migrations/NNNN_name.sql``, each applied once in a transaction.

Concurrent starters (several control-plane replicas) serialise on an advisory lock, so each
migration runs exactly once; re-running is a no-op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x48AE7AE  # arbitrary, stable: "haetae migrations"


class MigrationError(RuntimeError):
    def __init__(self, version: int, name: str, cause: Exception):
        super().__init__(f"migration {version:04d}_{name} failed: {cause}")
        self.version = version
        self.name = name


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def list_migrations() -> list[Migration]:
    found = []
    folder = resources.files("control_plane.store") / "migrations"
    for entry in folder.iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m[1]), m[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mg: mg.version)
    versions = [mg.version for mg in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a version number")
    return found


async def apply_migrations(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for mg in list_migrations():
            if mg.version in done:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(mg.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        mg.version,
                        mg.name,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(mg.version, mg.name, exc) from exc
            applied_now.append(mg.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
