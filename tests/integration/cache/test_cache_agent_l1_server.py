"""The agent's L1 over RESP on a unix socket: redis-py (RESP2 and RESP3) and redis-cli."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from cache_support import MakeCache

from agent.l1_server import L1Server, ProtocolError, encode, read_command
from haetae.cache import InvalidationBus, LayeredCache


@pytest.fixture
async def served(make_cache: MakeCache) -> AsyncIterator[tuple[L1Server, LayeredCache]]:
    cache = await make_cache()
    assert cache.l2 is not None
    with tempfile.TemporaryDirectory(prefix="hc-l1-") as d:
        async with (
            InvalidationBus(cache.l2.client, cache, block_ms=100) as bus,
            L1Server(cache, bus, unix_path=Path(d) / "l1.sock", port=0) as server,
        ):
            yield server, cache


@pytest.mark.parametrize("protocol", [2, 3])
async def test_redis_py_commands(
    served: tuple[L1Server, LayeredCache], make_cache: MakeCache, protocol: int
) -> None:
    server, _ = served
    r = aioredis.Redis(unix_socket_path=str(server.unix_path), protocol=protocol)
    try:
        assert await r.ping()
        assert await r.get("a") is None
        assert await r.set("a", b"\x00\xffbin")
        assert await r.get("a") == b"\x00\xffbin"
        assert await r.set("a", "other", nx=True) is None
        assert await r.set("b", "2", ex=100)
        assert 98 <= await r.ttl("b") <= 100
        assert 98_000 <= await r.pttl("b") <= 100_000
        assert await r.ttl("missing") == -2
        assert await r.mget("a", "b", "c") == [b"\x00\xffbin", b"2", None]
        assert await r.exists("a", "b", "c") == 2
        assert await r.delete("a", "zzz") == 1
        assert await r.get("a") is None
        # Write-through: another process reads it from L2.
        other = await make_cache()
        assert await other.get("b") == "2"
        assert await r.execute_command("TAGSET", "t:1", "x", 60000, "group") == b"OK"
        assert await r.execute_command("TAGKEYS", "group") == [b"t:1"]
        assert await r.execute_command("TAGDEL", "group") == 1
        assert await r.get("t:1") is None
        with pytest.raises(aioredis.ResponseError):
            await r.execute_command("FLUSHALL")
        with pytest.raises(aioredis.ResponseError):
            await r.execute_command("SET", "k", "v", "EX", "0")
        with pytest.raises(aioredis.ResponseError):
            await r.execute_command("GET")
        pipe = r.pipeline(transaction=False)
        for i in range(50):
            pipe.set(f"p{i}", i)
        for i in range(50):
            pipe.get(f"p{i}")
        results = await pipe.execute()
        assert results[50:] == [str(i).encode() for i in range(50)]
    finally:
        await r.aclose()
    assert server.commands > 0


async def test_tcp_port_and_inline_commands(served: tuple[L1Server, LayeredCache]) -> None:
    server, _ = served
    assert server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"PING\r\nSET k v\r\nGET k\r\nQUIT\r\n")
    data = await reader.read()
    writer.close()
    assert data == b"+PONG\r\n+OK\r\n$1\r\nv\r\n+OK\r\n"


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli not installed")
async def test_redis_cli(served: tuple[L1Server, LayeredCache]) -> None:
    server, _ = served

    async def cli(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "redis-cli", "-s", str(server.unix_path), *args, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        return out.decode().strip()

    assert await cli("SET", "cli", "hello", "PX", "5000") == "OK"
    assert await cli("GET", "cli") == "hello"
    assert await cli("EXISTS", "cli") == "1"


async def test_protocol_errors_and_encoding() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"*x\r\n")
    with pytest.raises(ProtocolError):
        await read_command(reader)
    reader = asyncio.StreamReader()
    reader.feed_data(b"*1\r\n:1\r\n")
    with pytest.raises(ProtocolError):
        await read_command(reader)
    assert encode({"a": 1}, True) == b"%1\r\n$1\r\na\r\n:1\r\n"
    assert encode(None, False) == b"$-1\r\n"
    assert encode(True, False) == b":1\r\n"
    with pytest.raises(TypeError):
        encode(object(), False)
