"""Several control-plane replicas behind a load balancer: each one's windows get the samples the
others ingested (ingest/replicate.py), through a real Redis Stream, on one database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient
from alerting_support import Plane, alerting_config, eventually
from pydantic import SecretStr
from tests_support import CuttableProxy

from control_plane.app import create_app
from control_plane.appkeys import INGESTOR, METRICS, POOL, REDIS
from control_plane.config import ControlPlaneConfig
from control_plane.ingest.context import REPLICATOR
from control_plane.ingest.replicate import SampleReplicator
from control_plane.ingest.windows import SeriesWindows
from haetae.embedded import EmbeddedRedis

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


def replica_config(
    db_dsn: str, redis_url: str, tmp_path: Path, **alerting: Any
) -> ControlPlaneConfig:
    tmp_path.mkdir(exist_ok=True)
    cfg = alerting_config(db_dsn, tmp_path, None, **alerting)
    return cfg.model_copy(
        update={
            "redis": cfg.redis.model_copy(
                update={"url": SecretStr(redis_url), "socket_timeout_s": 0.5}
            ),
            # A stream per test (per database): replicas of other tests are not peers.
            "ingest": cfg.ingest.model_copy(
                update={"replicate": "on", "replicate_stream": f"test:{urlsplit(db_dsn).path}"}
            ),
        }
    )


async def start_plane(client_factory: Client, cfg: ControlPlaneConfig, tmp_path: Path) -> Plane:
    client = await client_factory(create_app(cfg))
    # The first replica on the database writes the bootstrap token; the others reuse it.
    token_file = next(iter(sorted(tmp_path.parent.glob("*/admin.token"))))
    return Plane(client, token_file.read_text().strip())


def replicator(plane: Plane) -> SampleReplicator:
    return plane.client.app[REPLICATOR]


def windows(plane: Plane) -> SeriesWindows:
    return plane.client.app[INGESTOR].windows


def contents(plane: Plane, name: str) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Every series named ``name`` in the plane's windows: (agent, labels) -> points."""
    w = windows(plane)
    return {
        (ref.agent_id, repr(sorted(ref.labels.items()))): w.points(ref.series_id, 0, 1e12)
        for ref in w.select(name)
    }


async def peers_seen(*planes: Plane) -> bool:
    return all(replicator(p).peers for p in planes)


async def metric(plane: Plane, name: str) -> float:
    value = plane.client.app[METRICS].registry.get_sample_value(name)
    return 0.0 if value is None else value


async def test_reports_sent_alternately_fire_the_shard_owners_rule_once(
    db_dsn: str, redis_url: str, aiohttp_client: Client, tmp_path: Path
) -> None:
    a = await start_plane(
        aiohttp_client, replica_config(db_dsn, redis_url, tmp_path / "a"), tmp_path / "a"
    )
    b = await start_plane(
        aiohttp_client, replica_config(db_dsn, redis_url, tmp_path / "b"), tmp_path / "b"
    )
    await eventually(lambda: peers_seen(a, b))
    resp = await a.client.post(
        "/admin/alerts/rule",
        json={"name": "SixReports", "expr": "count_over_time(repl_x[5m]) >= 6"},
        headers=a.admin(),
    )
    assert resp.status == 201, await resp.text()
    token = await a.enroll("web-1")
    other = await a.enroll("web-2")
    for i in range(6):
        plane = (a, b)[i % 2]
        await plane.report("web-1", token, [("repl_x", {}, float(i))])
        await plane.report("web-2", other, [("repl_x", {}, float(i))])
        await asyncio.sleep(0.01)  # distinct timestamps

    async def both_have_all() -> bool:
        return all(len(pts) == 6 for p in (a, b) for pts in contents(p, "repl_x").values()) and all(
            len(contents(p, "repl_x")) == 2 for p in (a, b)
        )

    await eventually(both_have_all)
    assert contents(a, "repl_x") == contents(b, "repl_x")

    async def firing() -> list[Any]:
        rows = await a.client.app[POOL].fetch(
            "SELECT labels->>'agent' AS agent FROM alert_events "
            "WHERE rule_name = 'SixReports' AND state = 'firing'"
        )
        return sorted(r["agent"] for r in rows) if len(rows) >= 2 else []

    assert await eventually(firing) == ["web-1", "web-2"]
    await asyncio.sleep(0.5)  # a second firing (another replica, a re-fire) would show now
    assert await firing() == ["web-1", "web-2"]
    active = await b.active()  # from the database: the same on every replica
    assert sorted(x["labels"]["agent"] for x in active) == ["web-1", "web-2"]
    # Each sample was applied once to the other plane; none was published twice.
    assert await metric(a, "haetae_replicate_published_samples_total") == 6
    assert await metric(b, "haetae_replicate_published_samples_total") == 6
    assert await metric(a, "haetae_replicate_applied_samples_total") == 6
    assert await metric(b, "haetae_replicate_applied_samples_total") == 6
    resp = await a.client.get("/metrics")
    text = await resp.text()
    for name in (
        "haetae_replicate_published_samples_total",
        "haetae_replicate_applied_samples_total",
        "haetae_replicate_dropped_samples_total",
        "haetae_replicate_follower_lag_seconds",
        "haetae_replicate_gap_backfills_total",
    ):
        assert name in text


async def test_a_cut_off_replica_catches_up_through_postgres(
    db_dsn: str, redis_url: str, aiohttp_client: Client, tmp_path: Path
) -> None:
    proxy = CuttableProxy(redis_url)
    await proxy.start()
    try:
        a = await start_plane(
            aiohttp_client, replica_config(db_dsn, redis_url, tmp_path / "a"), tmp_path / "a"
        )
        b = await start_plane(
            aiohttp_client, replica_config(db_dsn, proxy.url, tmp_path / "b"), tmp_path / "b"
        )
        for p in (a, b):
            replicator(p).exact_trim = True
            replicator(p).max_entries = 10
        replicator(b).buffer_samples = 2  # B drops what it cannot publish beyond 2 samples
        await eventually(lambda: peers_seen(a, b))
        token = await a.enroll("web-1")
        await a.report("web-1", token, [("cut_x", {"k": "0"}, 0.0)])
        await b.report("web-1", token, [("cut_x", {"k": "0"}, 1.0)])

        async def same() -> bool:
            ca, cb = contents(a, "cut_x"), contents(b, "cut_x")
            return bool(ca) and ca == cb

        await eventually(same)
        proxy.cut()
        # A's entries are trimmed (10 kept) before B reads them; B's beyond 2 samples dropped.
        started = time.monotonic()
        for i in range(30):
            await a.report("web-1", token, [("cut_x", {"k": str(i % 3)}, float(i))])
        for i in range(5):
            # Redis unreachable for B: its ingest still answers 200 (Plane.report asserts it).
            await b.report("web-1", token, [("cut_x", {"k": "b"}, float(i))])
        assert time.monotonic() - started < 30  # generous: nothing waits on Redis
        assert await metric(b, "haetae_replicate_dropped_samples_total") == 3
        assert contents(a, "cut_x") != contents(b, "cut_x")
        proxy.restore()
        await eventually(same, within=20)
        ca = contents(a, "cut_x")
        assert sum(len(p) for p in ca.values()) == 2 + 30 + 5
        assert await metric(b, "haetae_replicate_gap_backfills_total") >= 1  # trimmed
        assert await metric(a, "haetae_replicate_gap_backfills_total") >= 1  # dropped
        # Both back in step afterwards, through the stream.
        await b.report("web-1", token, [("cut_x", {"k": "after"}, 7.0)])
        await a.report("web-1", token, [("cut_x", {"k": "after"}, 8.0)])
        await eventually(lambda: _has(a, b, ("cut_x", "after"), 2))
    finally:
        await proxy.stop()


async def _has(a: Plane, b: Plane, key: tuple[str, str], n: int) -> bool:
    name, k = key
    for p in (a, b):
        found = [pts for (_, labels), pts in contents(p, name).items() if k in labels]
        if not found or len(found[0]) != n:
            return False
    return True


async def test_ingest_answers_while_redis_is_dead(
    db_dsn: str, aiohttp_client: Client, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persist=False)
    url = server.start()
    try:
        plane = await start_plane(
            aiohttp_client, replica_config(db_dsn, url, tmp_path / "a"), tmp_path / "a"
        )
        token = await plane.enroll("web-1")
        await plane.report("web-1", token, [("dead_x", {}, 1.0)])
        await eventually(
            lambda: metric(plane, "haetae_replicate_published_samples_total"), within=10
        )
        server.stop()
        started = time.monotonic()
        for i in range(5):
            await plane.report("web-1", token, [("dead_x", {}, float(i))])  # asserts 200
        assert time.monotonic() - started < 20  # generous: the publish never waits for Redis
        [points] = contents(plane, "dead_x").values()
        assert len(points) == 6  # the local windows keep working
        assert await metric(plane, "haetae_replicate_buffered_samples") == 5
    finally:
        server.stop()


async def test_a_replica_joining_gets_what_the_one_alone_ingests_at_once(
    db_dsn: str, redis_url: str, aiohttp_client: Client, tmp_path: Path
) -> None:
    a = await start_plane(
        aiohttp_client, replica_config(db_dsn, redis_url, tmp_path / "a"), tmp_path / "a"
    )
    token = await a.enroll("web-1")
    await a.report("web-1", token, [("join_x", {}, 0.0)])
    await asyncio.sleep(1.5)  # A is alone: it only keeps its position at the stream's end
    assert replicator(a).peers == [] and not replicator(a).applied_entries
    b = await start_plane(
        aiohttp_client, replica_config(db_dsn, redis_url, tmp_path / "b"), tmp_path / "b"
    )
    # A may not have noticed B yet: what B ingests now still reaches A, and the other way.
    await b.report("web-1", token, [("join_y", {}, 1.0)])
    for i in range(1, 6):
        await a.report("web-1", token, [("join_x", {}, float(i))])

    async def b_has_them() -> bool:
        [points] = contents(b, "join_x").values() or [[]]
        return [v for _, v in points][-5:] == [1.0, 2.0, 3.0, 4.0, 5.0]

    await eventually(b_has_them)
    await eventually(lambda: _has(a, b, ("join_y", ""), 1))
    await b.report("web-1", token, [("join_x", {}, 6.0)])

    async def a_has_it() -> bool:
        [points] = contents(a, "join_x").values()
        return points[-1][1] == 6.0

    await eventually(a_has_it)


async def test_a_stream_reset_is_back_filled(
    db_dsn: str, redis_url: str, aiohttp_client: Client, tmp_path: Path
) -> None:
    a = await start_plane(
        aiohttp_client, replica_config(db_dsn, redis_url, tmp_path / "a"), tmp_path / "a"
    )
    b = await start_plane(
        aiohttp_client, replica_config(db_dsn, redis_url, tmp_path / "b"), tmp_path / "b"
    )
    await eventually(lambda: peers_seen(a, b))
    token = await a.enroll("web-1")
    for i in range(3):
        await a.report("web-1", token, [("reset_x", {}, float(i))])
    await eventually(lambda: _has(a, b, ("reset_x", ""), 3))
    # Redis restarted without its data, after B missed an entry: numbering starts over.
    rep = replicator(a)
    rep.buffer_samples = 0  # the next publish is dropped...
    await a.report("web-1", token, [("reset_x", {}, 3.0)])
    rep.buffer_samples = 1000
    await a.client.app[REDIS].delete(rep.stream, f"{rep.stream}:meta")
    rep._dropped_since = None  # ...and forgotten (as if lost with Redis' memory)
    await a.report("web-1", token, [("reset_x", {}, 4.0)])
    await eventually(lambda: _has(a, b, ("reset_x", ""), 5))
    assert await metric(b, "haetae_replicate_gap_backfills_total") >= 1
