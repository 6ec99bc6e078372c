"""The L2's lean RESP connection against the real Redis: batching into MGET, order, errors,
cancellation, reconnect, a server that stops answering, SELECT."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from haetae.cache import RedisL2, resp
from haetae.cache import keys as ck


@pytest.fixture
async def l2(redis_url: str, redis_client: aioredis.Redis) -> AsyncIterator[RedisL2]:
    l2 = RedisL2(aioredis.Redis.from_url(redis_url))
    assert isinstance(l2.pipeline, resp.FastPipeline)
    yield l2
    await l2.aclose()


async def test_gets_of_one_tick_travel_as_one_mget(l2: RedisL2) -> None:
    await l2.set("a", b"1", ttl_ms=None)
    await l2.set("b", b"2", ttl_ms=10_000)
    before = l2.pipeline.batches
    got = await asyncio.gather(*(l2.get(k) for k in ["a", "nope", "b"] * 100))
    assert got == [b"1", None, b"2"] * 100
    assert l2.pipeline.batches - before == 1
    assert await l2.mget(["b", "a", "zz"]) == [b"2", b"1", None]


async def test_order_with_other_commands_in_the_same_tick_is_kept(l2: RedisL2) -> None:
    p = l2.pipeline
    vkey = ck.value_key("ord")
    first = p.execute("GET", vkey)
    setter = p.execute("SET", vkey, b"new")
    second = p.execute("GET", vkey)
    deleted = p.execute("DEL", vkey)
    third = p.execute("GET", vkey)
    assert await asyncio.gather(first, setter, second, deleted, third) == [
        None,
        b"OK",
        b"new",
        1,
        None,
    ]


async def test_an_error_reply_fails_only_its_own_command(l2: RedisL2) -> None:
    p = l2.pipeline
    await p.execute("DEL", "haetae:test:list")
    await p.execute("RPUSH", "haetae:test:list", "x")
    results = await asyncio.gather(
        p.execute("INCR", "haetae:test:list"),
        p.execute("GET", "haetae:test:list"),  # WRONGTYPE too, inside the MGET it is nil
        p.execute("PING"),
        return_exceptions=True,
    )
    assert isinstance(results[0], ResponseError)
    assert results[2] == b"PONG"
    await p.execute("DEL", "haetae:test:list")


async def test_cancelled_commands_do_not_shift_replies(l2: RedisL2) -> None:
    await l2.set("c1", b"one", ttl_ms=None)
    await l2.set("c2", b"two", ttl_ms=None)
    dropped = l2.pipeline.execute("GET", ck.value_key("c1"))
    dropped.cancel()  # before it was sent: skipped
    kept = l2.get("c2")
    assert await kept == b"two"
    # Cancelled after sending: its reply arrives and is discarded.
    sent = l2.pipeline.execute("GET", ck.value_key("c1"))
    await asyncio.sleep(0)
    sent.cancel()
    assert await l2.get("c1") == b"one" and await l2.get("c2") == b"two"


async def test_reconnects_after_the_connection_is_killed(
    l2: RedisL2, redis_client: aioredis.Redis
) -> None:
    await l2.set("r", b"v", ttl_ms=None)
    conn_id = await l2.pipeline.execute("CLIENT", "ID")
    await redis_client.execute_command("CLIENT", "KILL", "ID", conn_id)
    for _ in range(50):
        try:
            if await l2.get("r") == b"v":
                break
        except RedisConnectionError:
            pass  # the command in flight when the kill landed
        await asyncio.sleep(0.01)
    else:
        pytest.fail("did not reconnect")
    assert await l2.pipeline.execute("CLIENT", "ID") != conn_id


async def test_a_silent_server_fails_the_commands_after_the_timeout() -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=0.3)
    l2 = RedisL2(client)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(RedisError):
            await l2.get("x")
        assert loop.time() - start < 2.0
    finally:
        await l2.aclose()
        for w in held:
            w.close()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


async def test_unreachable_server_fails_fast_and_closed_client_refuses() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    l2 = RedisL2(aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5))
    with pytest.raises(RedisConnectionError):
        await l2.get("x")
    await l2.aclose()
    with pytest.raises(RedisConnectionError):
        await l2.get("x")


async def test_selects_the_clients_database(redis_url: str) -> None:
    l2 = RedisL2(aioredis.Redis.from_url(redis_url, db=5))
    other = aioredis.Redis.from_url(redis_url, db=5)
    db0 = aioredis.Redis.from_url(redis_url)
    try:
        await l2.set("in-db5", b"x", ttl_ms=5000)
        assert await other.get(ck.value_key("in-db5")) == b"x"
        assert await db0.get(ck.value_key("in-db5")) is None
    finally:
        await other.delete(ck.value_key("in-db5"))
        await other.aclose()
        await db0.aclose()
        await l2.aclose()


async def test_the_redis_py_path_remains_available(redis_url: str) -> None:
    l2 = RedisL2(aioredis.Redis.from_url(redis_url), fast_path=False)
    try:
        assert not isinstance(l2.pipeline, resp.FastPipeline)
        await l2.set("slow", b"path", ttl_ms=None)
        assert await asyncio.gather(l2.get("slow"), l2.get("none")) == [b"path", None]
    finally:
        await l2.aclose()


async def test_invalidation_shares_the_connection_only_with_the_same_server(
    l2: RedisL2, redis_url: str
) -> None:
    assert isinstance(l2.pipeline, resp.FastPipeline)
    same = aioredis.Redis.from_url(redis_url)
    other_db = aioredis.Redis.from_url(redis_url, db=7)
    elsewhere = aioredis.Redis(host="127.0.0.1", port=1)
    try:
        assert l2.pipeline.serves(same) and l2.pipeline.serves(l2.client)
        assert not l2.pipeline.serves(other_db) and not l2.pipeline.serves(elsewhere)
    finally:
        for c in (same, other_db, elsewhere):
            await c.aclose()
