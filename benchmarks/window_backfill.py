"""Start-up back-fill of the rule windows: how long loading N series x span at one sample per
step takes (control_plane/ingest/backfill.py: pages of series, one binary COPY each).

    python benchmarks/window_backfill.py [--dsn DSN] [--series 1000] [--span 3600] [--step 1]

Without ``--dsn`` / ``HAETAE_BENCH_POSTGRES_DSN`` an embedded PostgreSQL is started in a
temporary directory. A scratch database is created for the run and dropped afterwards. The
rows are loaded with COPY first (not timed), then the table is analysed and the back-fill run
twice (the first also warms PostgreSQL's cache; both are printed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from control_plane.config import PostgresConfig, RetentionConfig  # noqa: E402
from control_plane.ingest.backfill import WindowBackfill  # noqa: E402
from control_plane.ingest.windows import SeriesWindows  # noqa: E402
from control_plane.maintenance import Maintenance  # noqa: E402
from control_plane.store import apply_migrations, create_pool  # noqa: E402


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def bench(server_dsn: str, args: argparse.Namespace) -> None:
    name = f"haetae_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        pool = await create_pool(
            with_database(server_dsn, name), PostgresConfig(pool_min_size=1, pool_max_size=2)
        )
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        now = time.time()
        await Maintenance(pool, RetentionConfig(retention_days=2), clock=lambda: now).run_once()
        await pool.execute(
            """INSERT INTO series (agent_id, name, labels, labels_key)
               SELECT 'agent-' || (i % 20), 'bench_metric', jsonb_build_object('i', i::text),
                      jsonb_build_object('i', i::text)::text
               FROM generate_series(1, $1) i""",
            args.series,
        )
        ids = [r[0] for r in await pool.fetch("SELECT series_id FROM series ORDER BY 1")]
        points = int(args.span / args.step)
        started = time.perf_counter()
        async with pool.acquire() as conn:
            for sid in ids:
                await conn.copy_records_to_table(
                    "samples",
                    records=[
                        (
                            sid,
                            dt.datetime.fromtimestamp(
                                now - args.span + (k + 1) * args.step, dt.UTC
                            ),
                            float(k),
                        )
                        for k in range(points)
                    ],
                    columns=("series_id", "ts", "value"),
                )
            await conn.execute("ANALYZE samples")
        print(
            f"loaded {len(ids) * points:,} samples ({len(ids)} series x {points}) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        for attempt in (1, 2):
            windows = SeriesWindows(window_seconds=args.span, max_points=points + 10)
            backfill = WindowBackfill(pool, windows, clock=lambda: now, series_page=args.page)
            result = await backfill.run(args.span)
            print(
                f"back-fill {attempt}: {result.samples:,} samples, {result.series} series in "
                f"{result.duration_s:.2f} s ({result.samples / result.duration_s:,.0f} samples/s)"
            )
        await pool.close()
    finally:
        admin = await asyncpg.connect(server_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("HAETAE_BENCH_POSTGRES_DSN"))
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--span", type=float, default=3600.0)
    parser.add_argument("--step", type=float, default=1.0)
    parser.add_argument("--page", type=int, default=200, help="series per COPY")
    args = parser.parse_args()
    if args.dsn:
        asyncio.run(bench(args.dsn, args))
        return
    from haetae.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="haetae-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", cleanup="delete", database="postgres")
        dsn = server.start()
        try:
            asyncio.run(bench(dsn, args))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
