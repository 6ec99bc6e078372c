import asyncpg

from control_plane.store import apply_migrations, list_migrations


async def test_template_is_fully_migrated_and_rerun_is_a_no_op(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == [m.version for m in list_migrations()]
        assert await apply_migrations(conn) == []
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert {"agents", "api_tokens", "series", "samples", "ingested_reports"} <= tables
    finally:
        await conn.close()
