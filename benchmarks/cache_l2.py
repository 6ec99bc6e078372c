"""L2, invalidation and agent-socket benchmarks against redis.asyncio, cashews and aiocache in the
same run, on a private redis-server (loopback TCP, started from the embedded binary).

1. L2 GET with 100 concurrent tasks for a few seconds each: ops/s and p99 per awaited GET.
2. Invalidation visible in four L1s (each its own clients and stream follower): p50/p99 from
   the publish call to the last L1 applying it.
3. The agent's L1 over its unix socket, redis-py as the client: p50/p99 of a GET hit.

    python benchmarks/cache_l2.py [--seconds 3] [--tasks 100]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from agent.l1_server import L1Server
from haetae.cache import InvalidationBus, L1Cache, LayeredCache, RedisL2
from haetae.embedded.redis import redis_server_binary


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
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000)[int(q * 1000) - 1]


async def drive(
    get: Callable[[str], Awaitable[Any]], tasks: int, seconds: float, prefix: str
) -> tuple[float, float]:
    lat: list[float] = []
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal done
        key = f"{prefix}:{i % 100}"
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await get(key)
            lat.append(time.perf_counter() - t)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return done / (time.perf_counter() - start), pct(lat, 0.99)


async def l2_get(port: int, tasks: int, seconds: float) -> None:
    from aiocache import RedisCache
    from cashews import Cache

    url = f"redis://127.0.0.1:{port}"
    raw = aioredis.Redis.from_url(url)
    ours = RedisL2(aioredis.Redis.from_url(url))
    cashews = Cache()
    cashews.setup(url, client_side=False)
    aiocache = RedisCache(endpoint="127.0.0.1", port=port)
    value = "x" * 100

    async def ours_set(key: str, v: str) -> None:
        await ours.set(key, v.encode(), ttl_ms=None)

    contenders: list[tuple[str, Callable[..., Awaitable[Any]], Callable[[str], Awaitable[Any]]]] = [
        ("redis.asyncio Redis.get", raw.set, raw.get),
        ("haetae RedisL2.get (auto-pipelined)", ours_set, ours.get),
        ("cashews redis:// get", cashews.set, cashews.get),
        ("aiocache RedisCache.get", aiocache.set, aiocache.get),
    ]
    print(f"L2 GET, {tasks} concurrent tasks, {seconds:.0f} s each:")
    for n, (name, setter, get) in enumerate(contenders):
        prefix = f"bench{n}"
        for i in range(100):
            await setter(f"{prefix}:{i}", value)
        assert await get(f"{prefix}:1") is not None
        ops, p99 = await drive(get, tasks, seconds, prefix)
        print(f"  {name:40s} {ops:9,.0f} ops/s   p99 {p99 * 1e6:7.0f} us")
    await raw.aclose()
    await ours.aclose()
    await cashews.close()
    await aiocache.close()


async def invalidation(port: int, rounds: int = 300) -> None:
    url = f"redis://127.0.0.1:{port}"
    nodes = []
    applied: dict[int, list[float]] = {}
    for _ in range(4):
        cache = LayeredCache(L1Cache(1000), RedisL2(aioredis.Redis.from_url(url)))
        original = cache.apply_invalidation

        def hook(keys: Any = (), tags: Any = (), prefixes: Any = (), _o: Any = original) -> int:
            for k in keys:
                applied.setdefault(int(k.split(":")[1]), []).append(time.perf_counter())
            return int(_o(keys, tags, prefixes))

        cache.apply_invalidation = hook  # type: ignore[method-assign]
        bus = InvalidationBus(aioredis.Redis.from_url(url), cache, block_ms=1000)
        await bus.start()
        nodes.append((cache, bus))
    publisher = nodes[0][1]
    lat = []
    for r in range(rounds):
        t = time.perf_counter()
        await publisher.invalidate(keys=[f"inv:{r}"])
        while len(applied.get(r, ())) < 4:  # noqa: ASYNC110 - spinning is the measurement
            await asyncio.sleep(0)
        lat.append(max(applied[r]) - t)
    print(f"invalidation visible in all of 4 L1s ({rounds} rounds):")
    print(f"  p50 {statistics.median(lat) * 1e3:.2f} ms   p99 {pct(lat, 0.99) * 1e3:.2f} ms")
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
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="haetae-bench-") as d:
        proc, port = start_redis(Path(d))
        try:
            await l2_get(port, args.tasks, args.seconds)
            await invalidation(port)
            await agent_socket(port, Path(d))
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
