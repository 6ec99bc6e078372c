"""The L2's per-master RESP fast path (haetae.cache.cluster) on a real three-master Redis Cluster:
routing by slot, a slot resharded under it (ASK while it migrates, MOVED once it has moved) and
a master killed with commands in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from cache_support import LocalCluster
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from haetae.cache import RedisL2
from haetae.cache import keys as ck
from haetae.cache.cluster import ClusterPipeline


def _cluster() -> Iterator[LocalCluster]:
    with tempfile.TemporaryDirectory(prefix="hc-clf-") as d:
        cluster = LocalCluster(Path(d))
        try:
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    yield from _cluster()


@pytest.fixture
def doomed_cluster() -> Iterator[LocalCluster]:
    """A cluster of its own for the test that kills a master."""
    yield from _cluster()


@pytest.fixture
async def l2(cluster: LocalCluster) -> AsyncIterator[RedisL2]:
    l2 = RedisL2.from_url(cluster.url)
    assert isinstance(l2.pipeline, ClusterPipeline)
    assert isinstance(l2.client, RedisCluster)
    await l2.client.initialize()
    await l2.client.flushall(target_nodes=RedisCluster.ALL_NODES)
    yield l2
    await l2.aclose()


def _slot(key: str) -> int:
    return key_slot(ck.value_key(key).encode())


def _owner(cluster: LocalCluster, slot: int) -> int:
    """Index of the master serving ``slot`` in the fixture's even split."""
    return min(slot // (16384 // len(cluster.ports)), len(cluster.ports) - 1)


def _port(pipeline: ClusterPipeline, slot: int) -> int:
    """The port of the master the pipeline's slot map sends ``slot`` to."""
    assert pipeline._slots is not None
    node = pipeline._slots[slot]
    assert node is not None
    return node.port


def _key_on(cluster: LocalCluster, index: int, prefix: str) -> str:
    return next(
        f"{prefix}{i}" for i in range(10_000) if _owner(cluster, _slot(f"{prefix}{i}")) == index
    )


async def test_get_set_delete_and_mget_across_slots(l2: RedisL2, cluster: LocalCluster) -> None:
    keys = [f"fp:{i}" for i in range(300)]
    assert {_owner(cluster, _slot(k)) for k in keys} == {0, 1, 2}
    await asyncio.gather(*(l2.set(k, k.encode(), ttl_ms=None) for k in keys))
    await l2.set("fp:tagged", b"t", ttl_ms=60_000, tags=["grp"])
    pipeline = l2.pipeline
    assert isinstance(pipeline, ClusterPipeline)
    before = pipeline.batches
    assert await l2.mget(keys) == [k.encode() for k in keys]
    assert pipeline.batches - before == 3  # one write per master for the 300 GETs
    assert await l2.get("fp:tagged") == b"t"
    assert await l2.get("fp:missing") is None
    # Written where redis-py's own routing reads them.
    assert await l2.client.get(ck.value_key("fp:7")) == b"fp:7"
    assert await l2.client.smembers(ck.tag_key("grp")) == {b"fp:tagged"}
    assert 0 < await l2.client.pttl(ck.value_key("fp:tagged")) <= 60_000
    assert await l2.delete(keys[:100]) == 100
    assert await l2.mget(keys[:3]) == [None, None, None]
    assert await l2.get(keys[100]) == keys[100].encode()
    assert await l2.acquire_lease("fp:1", "a", 5_000)
    assert not await l2.acquire_lease("fp:1", "b", 5_000)
    # An error reply fails its own command only.
    await l2.client.sadd(ck.value_key("fp:set"), "m")
    results = await asyncio.gather(l2.get("fp:set"), l2.get(keys[200]), return_exceptions=True)
    assert isinstance(results[0], redis.ResponseError) and "WRONGTYPE" in str(results[0])
    assert results[1] == keys[200].encode()
    assert pipeline.refreshes == 1  # the map was read once


async def test_resharded_slot_ask_while_migrating_then_moved(
    l2: RedisL2, cluster: LocalCluster
) -> None:
    pipeline = l2.pipeline
    assert isinstance(pipeline, ClusterPipeline)
    key = next(f"{{rs{i}}}k" for i in range(10_000) if _owner(cluster, _slot(f"{{rs{i}}}")) == 0)
    slot = _slot(key)
    src, dst, other = (cluster.node(i) for i in (0, 1, 2))
    try:
        src_id, dst_id = (n.execute_command("CLUSTER MYID") for n in (src, dst))
        await l2.set(key, b"v1", ttl_ms=None)
        assert await l2.get(key) == b"v1"
        assert _port(pipeline, slot) == cluster.ports[0]

        # What redis-cli --cluster reshard does for one slot: IMPORTING on the target,
        # MIGRATING on the source, then MIGRATE the keys one by one.
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        src.execute_command(
            "MIGRATE", "127.0.0.1", cluster.ports[1], "", 0, 5000, "KEYS", ck.value_key(key)
        )
        # The key is on the target now: the source answers ASK and the command follows it.
        assert await l2.get(key) == b"v1"
        # A new key in the migrating slot is written on the target (ASK), then read back.
        sibling = key + "b"
        assert _slot(sibling) == slot
        await l2.set(sibling, b"v2", ttl_ms=None)
        assert await l2.get(sibling) == b"v2"
        assert _port(pipeline, slot) == cluster.ports[0]  # ASK leaves the map alone
        assert pipeline.refreshes == 1

        # The slot is handed over: the source now answers MOVED; the command is retried on the
        # target and the slot map follows.
        for node in (dst, src, other):
            node.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
        assert await l2.mget([key, sibling]) == [b"v1", b"v2"]
        assert _port(pipeline, slot) == cluster.ports[1]
        await asyncio.sleep(0.15)  # past the refresh throttle
        assert await l2.get(key) == b"v1"  # a refresh of the map ran before this one
        assert pipeline.refreshes == 2
        assert _port(pipeline, slot) == cluster.ports[1]
        assert await l2.delete([key, sibling]) == 2
    finally:
        for node in (src, dst, other):
            node.close()


async def test_killed_master_fails_its_commands_the_others_keep_working(
    doomed_cluster: LocalCluster,
) -> None:
    cluster = doomed_cluster
    l2 = RedisL2.from_url(cluster.url, socket_timeout=0.5)
    pipeline = l2.pipeline
    assert isinstance(pipeline, ClusterPipeline)
    keys = [_key_on(cluster, i, "kill:") for i in range(3)]
    try:
        for k in keys:
            await l2.set(k, k.encode(), ttl_ms=None)
        assert await l2.mget(keys) == [k.encode() for k in keys]

        # Commands in flight when their master dies fail with redis-py's ConnectionError.
        refreshes = pipeline.refreshes
        os.kill(cluster.procs[2].pid, signal.SIGSTOP)
        fut = asyncio.ensure_future(l2.get(keys[2]))
        await asyncio.sleep(0.1)  # sent on the open connection, not answered: stopped
        assert not fut.done()
        cluster.kill(2)
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(fut, 5)
        # The next commands re-read the map; the dead master's keys fail fast, the rest work.
        results = await asyncio.gather(*(l2.get(k) for k in keys), return_exceptions=True)
        assert results[:2] == [keys[0].encode(), keys[1].encode()]
        assert isinstance(results[2], redis.ConnectionError)
        assert pipeline.refreshes > refreshes

        # A master that stops answering: its command times out (the watchdog), others answer.
        os.kill(cluster.procs[1].pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(0.15)  # past the refresh throttle: the map is re-read first
            results = await asyncio.wait_for(
                asyncio.gather(*(l2.get(k) for k in keys[:2]), return_exceptions=True), 5
            )
        finally:
            os.kill(cluster.procs[1].pid, signal.SIGCONT)
        assert results[0] == keys[0].encode()
        assert isinstance(results[1], redis.TimeoutError)
        assert await l2.get(keys[0]) == keys[0].encode()
    finally:
        await l2.aclose()


async def test_a_cancelled_command_does_not_shift_the_replies(
    l2: RedisL2, cluster: LocalCluster
) -> None:
    keys = [_key_on(cluster, 0, f"cx{i}:") for i in range(3)]
    for k in keys:
        await l2.set(k, k.encode(), ttl_ms=None)
    futs = [asyncio.ensure_future(l2.get(k)) for k in keys]
    futs[1].cancel()  # before it is sent
    late = asyncio.ensure_future(l2.get(keys[1]))
    await asyncio.sleep(0)
    futs[0].cancel()  # after (most likely) being queued on the connection
    assert await futs[2] == keys[2].encode()
    assert await late == keys[1].encode()
    assert await l2.mget(keys) == [k.encode() for k in keys]
