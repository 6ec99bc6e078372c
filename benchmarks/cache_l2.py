"""L2, invalidation and agent-socket benchmarks against redis.asyncio, cashews and aiocache in the
same run, on a private redis-server (loopback TCP, started from the embedded binary).

1. L2 GET: closed loop (100 tasks, each awaiting one GET after another: ops/s, p50/p99 per
   awaited GET, timed identically for every contender; here mean latency = 100 / ops/s by
   Little's law) and open loop (GETs started at fixed offered rates whatever the replies do:
   p50/p99 from each GET's start, p99 also from its due time). Contenders: redis.asyncio,
   RedisL2 on its RESP fast path, RedisL2 forced onto redis-py's pipeline, cashews, aiocache.
2. Invalidation visible in four L1s (each its own clients and stream follower): p50/p99 from
   the publish call to the last L1 applying it.
3. The agent's L1 over its unix socket, redis-py as the client: p50/p99 of a GET hit.

``--cluster`` runs the L2 GET measurements (1.) only, on a private three-master Redis Cluster
(loopback ports, started like the tests' cluster): redis.asyncio's RedisCluster, RedisL2 on its
per-master fast path, RedisL2 forced onto redis-py's cluster pipeline.

    python benchmarks/cache_l2.py [--seconds 3] [--tasks 100] [--rates 5000,40000]
        [--only l2|invalidation|socket] [--no-peers] [--rounds 300] [--uvloop] [--cluster]

``--uvloop`` runs everything on uvloop (``pip install -e '.[speedups]'``, which also brings
hiredis: redis-py and the fast path then parse replies in C, peers included).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from agent.l1_server import L1Server
from haetae.cache import InvalidationBus, L1Cache, LayeredCache, RedisL2, resp
from haetae.embedded.redis import redis_server_binary
from haetae.procs import die_with_parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def start_cluster(workdir: Path, masters: int = 3) -> tuple[list[subprocess.Popen[bytes]], int]:
    """A Redis Cluster of ``masters`` masters, no replicas, slots split evenly (as the tests'
    ``LocalCluster``); returns the processes and one node's port."""
    ports: list[int] = []
    rng = random.Random()
    while len(ports) < masters:  # the cluster bus listens on port + 10000
        port = rng.randrange(20_000, 45_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    procs = []
    for port in ports:
        (workdir / str(port)).mkdir()
        procs.append(
            subprocess.Popen(
                [
                    redis_server_binary(),
                    *("--port", str(port), "--bind", "127.0.0.1"),
                    *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                    *("--save", "", "--appendonly", "no", "--dir", str(workdir / str(port))),
                ],
                stdout=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        )
    clients = []
    for port in ports:
        for _ in range(200):
            try:
                c = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
                c.ping()
                clients.append(c)
                break
            except redis.ConnectionError:
                time.sleep(0.02)
    per = 16384 // masters
    for i, c in enumerate(clients):
        c.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)
        end = 16384 if i == masters - 1 else (i + 1) * per
        c.execute_command("CLUSTER ADDSLOTS", *range(i * per, end))
    for port in ports[1:]:
        clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)
    deadline = time.monotonic() + 15
    while not all(c.cluster("INFO").get("cluster_state") == "ok" for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster did not converge")
        time.sleep(0.05)
    for c in clients:
        c.close()
    return procs, ports[0]


def settle() -> None:
    """Before each measured phase, for every contender alike: collect, then freeze what is left
    (imports, earlier contenders' clients) so later GC passes walk only this phase's objects.
    A server can do the same after start-up (gc.freeze); without it a full pass over the
    peers' imported modules lands in some contenders' tails and not others'."""
    gc.collect()
    gc.freeze()


def pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000)[int(q * 1000) - 1]


Get = Callable[[str], Awaitable[Any]]


async def closed_loop(get: Get, tasks: int, seconds: float, prefix: str) -> dict[str, float]:
    """``tasks`` workers, each awaiting one GET after the other; every GET timed the same way
    (perf_counter around the await). By Little's law mean latency = tasks / throughput here."""
    settle()
    lat: list[float] = []
    record = lat.append
    clock = time.perf_counter
    stop = clock() + seconds

    async def worker(i: int) -> None:
        key = f"{prefix}:{i % 100}"
        while True:
            t = clock()
            if t >= stop:
                return
            await get(key)
            record(clock() - t)

    start = clock()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    elapsed = clock() - start
    return {"ops": len(lat) / elapsed, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99)}


async def open_loop(
    get: Get, rate: float, seconds: float, prefix: str, max_inflight: int = 5000
) -> dict[str, float]:
    """GETs started at a fixed offered rate whatever the replies do (no coordinated omission).
    Request i is due at start + i/rate; a pacer woken by a short timer (asyncio's timers have
    ~1 ms granularity) starts every request that is due. Two latencies per request: from its
    start to its reply (the client's and Redis' service time), and from its due time (adds the
    pacer's lateness, i.e. also any time the event loop was busy elsewhere). The pacer sleeps
    rather than spins: on a shared 2-vCPU machine a spinning process loses the CPU to others
    and its tail then measures the scheduler. Identical for every contender; requests that fail
    or would exceed ``max_inflight`` count as not answered."""
    settle()
    lat: list[float] = []
    late: list[float] = []
    record = lat.append
    record_late = late.append
    clock = time.perf_counter
    loop = asyncio.get_running_loop()
    inflight: set[asyncio.Task[None]] = set()
    errors = 0

    async def one(key: str, due: float) -> None:
        nonlocal errors
        t = clock()
        try:
            await get(key)
        except Exception:
            errors += 1
            return
        now = clock()
        record(now - t)
        record_late(now - due)

    start = clock()
    total = int(rate * seconds)
    issued = 0
    while issued < total:
        due_now = min(total, int((clock() - start) * rate) + 1)
        while issued < due_now:
            if len(inflight) < max_inflight:
                task = loop.create_task(one(f"{prefix}:{issued % 100}", start + issued / rate))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            issued += 1
        await asyncio.sleep(0.0002)
    # Wait (bounded) for the stragglers; unfinished ones count as not answered.
    deadline = clock() + 5.0
    while inflight and clock() < deadline:  # noqa: ASYNC110 - bounded drain
        await asyncio.sleep(0.001)
    for task in list(inflight):
        task.cancel()
    await asyncio.gather(*inflight, return_exceptions=True)
    elapsed = clock() - start
    ok = len(lat) > 1
    nan = float("nan")
    return {
        "ops": len(lat) / elapsed,
        "done": len(lat) / total,
        "errors": errors,
        "p50": pct(lat, 0.5) if ok else nan,
        "p99": pct(lat, 0.99) if ok else nan,
        "due_p99": pct(late, 0.99) if ok else nan,
    }


async def l2_contenders(port: int, peers: bool) -> list[tuple[str, Any, Get, Any]]:
    url = f"redis://127.0.0.1:{port}"
    raw = aioredis.Redis.from_url(url)
    ours = RedisL2(aioredis.Redis.from_url(url))
    old = RedisL2(aioredis.Redis.from_url(url), fast_path=False)

    async def ours_set(key: str, v: str) -> None:
        await ours.set(key, v.encode(), ttl_ms=None)

    async def old_set(key: str, v: str) -> None:
        await old.set(key, v.encode(), ttl_ms=None)

    out: list[tuple[str, Any, Get, Any]] = [
        ("redis.asyncio Redis.get", raw.set, raw.get, raw.aclose),
        ("haetae RedisL2.get (RESP fast path)", ours_set, ours.get, ours.aclose),
        ("haetae RedisL2.get (redis-py pipeline)", old_set, old.get, old.aclose),
    ]
    if peers:
        from aiocache import RedisCache
        from cashews import Cache

        cashews = Cache()
        cashews.setup(url, client_side=False)
        aiocache = RedisCache(endpoint="127.0.0.1", port=port)
        out += [
            ("cashews redis:// get", cashews.set, cashews.get, cashews.close),
            ("aiocache RedisCache.get", aiocache.set, aiocache.get, aiocache.close),
        ]
    return out


async def cluster_contenders(port: int) -> list[tuple[str, Any, Get, Any]]:
    url = f"redis+cluster://127.0.0.1:{port}"
    raw = RedisCluster(host="127.0.0.1", port=port)
    ours = RedisL2.from_url(url)
    old = RedisL2(RedisCluster(host="127.0.0.1", port=port), fast_path=False)
    assert type(ours.pipeline).__name__ == "ClusterPipeline"

    async def ours_set(key: str, v: str) -> None:
        await ours.set(key, v.encode(), ttl_ms=None)

    async def old_set(key: str, v: str) -> None:
        await old.set(key, v.encode(), ttl_ms=None)

    return [
        ("redis.asyncio RedisCluster.get", raw.set, raw.get, raw.aclose),
        ("haetae RedisL2.get (cluster fast path)", ours_set, ours.get, ours.aclose),
        ("haetae RedisL2.get (redis-py cluster pipe)", old_set, old.get, old.aclose),
    ]


async def l2_get(
    port: int, tasks: int, seconds: float, rates: list[float], peers: bool, cluster: bool = False
) -> None:
    contenders = await (cluster_contenders(port) if cluster else l2_contenders(port, peers))
    value = "x" * 100
    for n, (_name, setter, get, _close) in enumerate(contenders):
        for i in range(100):
            await setter(f"bench{n}:{i}", value)
        assert await get(f"bench{n}:1") is not None
    print(f"L2 GET, closed loop: {tasks} concurrent tasks, {seconds:.0f} s each (latency per GET):")
    base = None
    for n, (name, _setter, get, _close) in enumerate(contenders):
        r = await closed_loop(get, tasks, seconds, f"bench{n}")
        base = base or r["ops"]
        print(
            f"  {name:40s} {r['ops']:9,.0f} ops/s ({r['ops'] / base:4.1f}x)"
            f"   p50 {r['p50'] * 1e6:6.0f} us   p99 {r['p99'] * 1e6:6.0f} us"
        )
    for rate in rates:
        print(
            f"L2 GET, open loop at {rate:,.0f} GET/s offered, {seconds:.0f} s each"
            " (latency from each GET's start; from its due time in brackets):"
        )
        for n, (name, _setter, get, _close) in enumerate(contenders):
            r = await open_loop(get, rate, seconds, f"bench{n}")
            note = (
                ""
                if r["done"] >= 0.999
                else f"   (only {r['done']:.1%} answered, {r['errors']:.0f} errors: saturated)"
            )
            print(
                f"  {name:40s} {r['ops']:9,.0f} ops/s   p50 {r['p50'] * 1e6:6.0f} us"
                f"   p99 {r['p99'] * 1e6:6.0f} us   (from due time: p99"
                f" {r['due_p99'] * 1e6:6.0f} us){note}"
            )
    for *_, close in contenders:
        await close()


async def invalidation(port: int, rounds: int = 300) -> None:
    """Round r invalidates key inv:r from node 0 and ends when the fourth L1 has applied it;
    latency = the publish call's start to the last L1's apply (all in this process, each node
    with its own clients). The publisher waits on a future the last apply resolves (it does not
    spin: on two vCPUs a spinning waiter takes a core from Redis and the followers)."""
    url = f"redis://127.0.0.1:{port}"
    nodes = []
    applied: dict[int, list[float]] = {}
    waiting: dict[int, asyncio.Future[None]] = {}
    for _ in range(4):
        cache = LayeredCache(L1Cache(1000), RedisL2(aioredis.Redis.from_url(url)))
        original = cache.apply_invalidation

        def hook(keys: Any = (), tags: Any = (), prefixes: Any = (), _o: Any = original) -> int:
            now = time.perf_counter()
            for k in keys:
                r = int(k.split(":")[1])
                seen = applied.setdefault(r, [])
                seen.append(now)
                fut = waiting.get(r)
                if len(seen) == 4 and fut is not None and not fut.done():
                    fut.set_result(None)
            return int(_o(keys, tags, prefixes))

        cache.apply_invalidation = hook  # type: ignore[method-assign]
        bus = InvalidationBus(aioredis.Redis.from_url(url), cache, block_ms=1000)
        await bus.start()
        nodes.append((cache, bus))
    publisher = nodes[0][1]
    loop = asyncio.get_running_loop()
    gc_pauses: list[float] = []
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_pauses.append(time.perf_counter() - gc_start[0])

    lat, publish = [], []
    settle()
    gc.callbacks.append(on_gc)
    try:
        for r in range(rounds):
            waiting[r] = done = loop.create_future()
            t = time.perf_counter()
            await publisher.invalidate(keys=[f"inv:{r}"])
            publish.append(time.perf_counter() - t)
            await asyncio.wait_for(done, 5.0)
            lat.append(max(applied[r]) - t)
    finally:
        gc.callbacks.remove(on_gc)
    print(f"invalidation visible in all of 4 L1s ({rounds} rounds):")
    print(f"  p50 {statistics.median(lat) * 1e3:.2f} ms   p99 {pct(lat, 0.99) * 1e3:.2f} ms")
    print(
        f"  (the publish call alone: p50 {statistics.median(publish) * 1e3:.2f} ms"
        f"   p99 {pct(publish, 0.99) * 1e3:.2f} ms; max {max(lat) * 1e3:.2f} ms;"
        f" GC passes {len(gc_pauses)}, longest {max(gc_pauses, default=0) * 1e3:.2f} ms)"
    )
    for cache, bus in nodes:
        await bus.stop()
        await bus.client.aclose()
        assert cache.l2 is not None
        await cache.l2.aclose()


async def agent_socket(port: int, workdir: Path, n: int = 20_000) -> None:
    cache = LayeredCache(
        L1Cache(10_000), RedisL2(aioredis.Redis.from_url(f"redis://127.0.0.1:{port}"))
    )
    async with L1Server(cache, unix_path=workdir / "l1.sock") as server:
        client = aioredis.Redis(unix_socket_path=str(server.unix_path))
        await client.set("hot", b"x" * 100)
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            await client.get("hot")
            lat.append(time.perf_counter() - t)
        await client.aclose()
    assert cache.l2 is not None
    await cache.l2.aclose()
    print(f"agent L1 over its unix socket, redis-py GET hit ({n} sequential):")
    print(f"  p50 {statistics.median(lat) * 1e6:.0f} us   p99 {pct(lat, 0.99) * 1e6:.0f} us")


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--rates", default="5000,40000", help="open-loop offered GET/s, comma-separated")
    p.add_argument("--no-peers", action="store_true", help="skip cashews and aiocache")
    p.add_argument("--rounds", type=int, default=300, help="invalidation rounds")
    p.add_argument(
        "--cluster", action="store_true", help="L2 GET on a 3-master Redis Cluster (only that)"
    )
    p.add_argument(
        "--only", choices=["l2", "invalidation", "socket"], action="append", help="repeatable"
    )
    args = p.parse_args()
    only = set(args.only or ["l2", "invalidation", "socket"])
    rates = [float(r) for r in args.rates.split(",") if r]
    print(
        f"event loop: {type(asyncio.get_running_loop()).__module__}, hiredis: {resp.HAVE_HIREDIS}"
    )
    if args.cluster:
        with tempfile.TemporaryDirectory(prefix="haetae-bench-cl-") as d:
            procs, port = start_cluster(Path(d))
            try:
                await l2_get(port, args.tasks, args.seconds, rates, False, cluster=True)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    proc.wait()
        return
    with tempfile.TemporaryDirectory(prefix="haetae-bench-") as d:
        proc, port = start_redis(Path(d))
        try:
            if "l2" in only:
                await l2_get(port, args.tasks, args.seconds, rates, not args.no_peers)
            if "invalidation" in only:
                await invalidation(port, args.rounds)
            if "socket" in only:
                await agent_socket(port, Path(d))
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        sys.argv.remove("--uvloop")
        import uvloop

        uvloop.install()
    asyncio.run(main())
