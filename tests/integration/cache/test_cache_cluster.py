"""The L2 and the invalidation stream on a real three-master Redis Cluster (loopback ports,
started from the redis-server binary); the cluster client follows MOVED redirections."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from haetae.cache import InvalidationBus, L1Cache, LayeredCache, RedisL2, client_from_url
from haetae.embedded.redis import redis_server_binary
from haetae.procs import die_with_parent
from haetae.resilience import BreakerConfig, CircuitBreaker


def _free_ports(n: int) -> list[int]:
    """Ports whose cluster-bus twin (port + 10000) is free and valid too."""
    ports: list[int] = []
    rng = random.Random()
    while len(ports) < n:
        port = rng.randrange(20_000, 45_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="hc-cl-") as d:
        ports = _free_ports(3)
        procs = []
        for port in ports:
            node_dir = Path(d) / str(port)
            node_dir.mkdir()
            procs.append(
                subprocess.Popen(
                    [
                        redis_server_binary(),
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(node_dir),
                    ],
                    stdout=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                )
            )
        try:
            clients = []
            for port in ports:
                for _ in range(200):
                    try:
                        c = redis.Redis(host="127.0.0.1", port=port, retry=None)
                        c.ping()
                        clients.append(c)
                        break
                    except redis.ConnectionError:
                        time.sleep(0.02)
            per = 16384 // 3
            for i, c in enumerate(clients):
                # Distinct epochs up front: no collision to resolve, so the cluster agrees fast.
                c.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)
                end = 16384 if i == 2 else (i + 1) * per
                c.execute_command("CLUSTER ADDSLOTS", *range(i * per, end))
            for port in ports[1:]:
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)
            deadline = time.monotonic() + 15
            while not all(c.cluster("INFO").get("cluster_state") == "ok" for c in clients):
                assert time.monotonic() < deadline, "cluster did not converge"
                time.sleep(0.05)
            for c in clients:
                c.close()
            yield f"redis+cluster://127.0.0.1:{ports[0]}"
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()


@pytest.fixture
async def cluster_caches(cluster_url: str) -> AsyncIterator[list[LayeredCache]]:
    # Cold cluster clients discover slots on first use: a lenient breaker keeps that from
    # counting as slow calls (the breaker itself is tested elsewhere).
    lenient = BreakerConfig(timeout_s=2.0, slow_call_duration_s=1.0)
    caches = [
        LayeredCache(
            L1Cache(1000), RedisL2.from_url(cluster_url), breaker=CircuitBreaker("cl", lenient)
        )
        for _ in range(2)
    ]
    assert caches[0].l2 is not None and caches[0].l2.is_cluster
    await caches[0].l2.client.flushall(target_nodes=RedisCluster.ALL_NODES)  # type: ignore[call-arg]
    yield caches
    for c in caches:
        await c.aclose()
        assert c.l2 is not None
        await c.l2.aclose()


async def test_read_path_and_pipelined_gets_across_slots(
    cluster_caches: list[LayeredCache],
) -> None:
    a, b = cluster_caches

    async def load(key: str) -> str:
        return key.upper()

    keys = [f"cl:{i}" for i in range(300)]  # spread over all three masters
    assert await a.get_many(keys, load) == [k.upper() for k in keys]
    assert b.l2 is not None
    raw = await b.l2.mget(keys)
    assert all(r is not None for r in raw)
    assert await b.get_many(keys) == [k.upper() for k in keys]
    assert b.stats.snapshot()["layers"]["l2"]["hit"] == 300


async def test_invalidation_by_key_tag_and_prefix_on_a_cluster(
    cluster_caches: list[LayeredCache],
) -> None:
    a, b = cluster_caches
    assert a.l2 is not None and b.l2 is not None
    async with (
        InvalidationBus(a.l2.client, a, block_ms=100) as bus_a,
        InvalidationBus(b.l2.client, b, block_ms=100),
    ):
        for i in range(30):
            await a.set(f"pfx:{i}", i, tags=["grp"] if i < 10 else ())
        assert await b.get("pfx:5") == 5 and await b.get("pfx:25") == 25
        result = await bus_a.invalidate_and_wait(tags=["grp"], timeout_s=5)
        assert result is not None and result.complete
        assert "pfx:5" not in b.l1 and await b.get("pfx:5") is None
        result = await bus_a.invalidate_and_wait(prefixes=["pfx:"], timeout_s=5)
        assert result is not None and result.complete
        assert "pfx:25" not in b.l1
        assert await b.l2.mget([f"pfx:{i}" for i in range(30)]) == [None] * 30


def test_url_scheme_selects_the_client() -> None:
    assert isinstance(client_from_url("redis+cluster://127.0.0.1:1"), RedisCluster)
    assert not isinstance(client_from_url("redis://127.0.0.1:1"), RedisCluster)
    asyncio.run(asyncio.sleep(0))
