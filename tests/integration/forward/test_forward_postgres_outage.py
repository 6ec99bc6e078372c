"""The forwarder cut off from PostgreSQL (ingest is not): it waits, then goes on where it was;
every sample reaches the store once."""

from __future__ import annotations

import asyncio
import glob
import os
import time
from urllib.parse import parse_qs, urlsplit

from forward_support import FakeStore, Forwarding, make_report, wait_for
from tests_support import CuttableProxy

from control_plane.config import PostgresConfig
from control_plane.store import create_pool

SERIES = 5


def proxy_target(dsn: str) -> str:
    """What CuttableProxy connects to for the PostgreSQL server of ``dsn``."""
    parts = urlsplit(dsn)
    hosts = parse_qs(parts.query).get("host")
    if hosts and hosts[0].startswith("/"):
        found = glob.glob(os.path.join(hosts[0], ".s.PGSQL.*"))
        if found:
            return f"unix://{found[0]}"
    return f"redis://{parts.hostname}:{parts.port}"


async def test_the_forwarder_rides_out_a_postgres_outage(
    forwarding: Forwarding, fake_store: FakeStore, db_dsn: str
) -> None:
    f = forwarding
    proxy = CuttableProxy(proxy_target(db_dsn))
    await proxy.start()
    parts = urlsplit(db_dsn)
    user = parts.username or "postgres"
    password = f":{parts.password}" if parts.password else ""
    proxied = f"postgresql://{user}{password}@127.0.0.1:{proxy.port}{parts.path}"
    pool = await create_pool(
        proxied,
        PostgresConfig(pool_min_size=1, pool_max_size=4, connect_timeout_s=1, command_timeout_s=2),
    )
    try:
        await f.start_forwarder(fake_store.url, pool=pool)
        start = time.time()
        await f.ingestor.submit(make_report("web-1", start, SERIES))
        await wait_for(lambda: _sent(fake_store, SERIES), what="the first batch")

        proxy.cut()
        for k in range(1, 4):  # ingest goes on: its pool is not cut off
            await f.ingestor.submit(make_report("web-1", start + k, SERIES))
        await asyncio.sleep(0.5)
        assert len(fake_store.samples()) == SERIES
        assert await f.outbox_rows() == 3

        proxy.restore()
        await wait_for(lambda: _sent(fake_store, 4 * SERIES), what="the backlog after the outage")
        await wait_for(lambda: _outbox_empty(f), what="the outbox to empty")
        got = fake_store.samples()
        assert len(got) == len(set(got)) == 4 * SERIES
    finally:
        await f.stop_forwarders()
        await pool.close()
        await proxy.stop()


async def _sent(store: FakeStore, n: int) -> bool:
    return len(store.samples()) >= n


async def _outbox_empty(f: Forwarding) -> bool:
    return await f.outbox_rows() == 0
