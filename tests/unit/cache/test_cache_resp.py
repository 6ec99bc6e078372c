"""The RESP fast path's reader, encoder and client check, without a server."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from haetae.cache import resp


def _read_all(reader: resp.PyReader) -> list[object]:
    out = []
    while (reply := reader.gets()) is not False:
        out.append(reply)
    return out


WIRE = (
    b"$3\r\nabc\r\n"
    b"$-1\r\n"
    b"*3\r\n$1\r\nx\r\n$-1\r\n$0\r\n\r\n"
    b":42\r\n"
    b"+OK\r\n"
    b"-WRONGTYPE Operation against a key\r\n"
    b"*2\r\n*1\r\n:1\r\n$2\r\nhi\r\n"
    b"*-1\r\n"
    b"*0\r\n"
)
EXPECTED = [
    b"abc",
    None,
    [b"x", None, b""],
    42,
    b"OK",
    "error",
    [[1], b"hi"],
    None,
    [],
]


def _check(replies: list[object]) -> None:
    assert len(replies) == len(EXPECTED)
    for got, want in zip(replies, EXPECTED, strict=True):
        if want == "error":
            assert isinstance(got, ResponseError) and "WRONGTYPE" in str(got)
        else:
            assert got == want


def test_reader_parses_every_reply_kind_in_one_chunk() -> None:
    reader = resp.PyReader()
    reader.feed(WIRE)
    _check(_read_all(reader))
    assert reader.gets() is False


def test_reader_parses_replies_split_at_every_byte() -> None:
    reader = resp.PyReader()
    replies: list[object] = []
    for i in range(len(WIRE)):
        reader.feed(WIRE[i : i + 1])
        replies.extend(_read_all(reader))
    _check(replies)


def test_reader_handles_a_large_mget_reply_in_chunks() -> None:
    values = [b"v" * (i % 300) if i % 7 else None for i in range(1000)]
    wire = b"*1000\r\n" + b"".join(
        b"$-1\r\n" if v is None else b"$%d\r\n%b\r\n" % (len(v), v) for v in values
    )
    reader = resp.PyReader()
    replies: list[object] = []
    for i in range(0, len(wire), 4096):
        reader.feed(wire[i : i + 4096])
        replies.extend(_read_all(reader))
    assert replies == [values]


def test_pack_encodes_str_bytes_int_and_float() -> None:
    assert resp.pack(("SET", b"k\r\n", 12, 1.5)) == (
        b"*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n12\r\n$3\r\n1.5\r\n"
    )


def test_fast_path_only_for_plain_standalone_clients() -> None:
    assert resp.supports(aioredis.Redis.from_url("redis://127.0.0.1:6379/2"))
    assert resp.supports(aioredis.Redis.from_url("unix:///tmp/redis.sock"))
    assert not resp.supports(aioredis.Redis.from_url("rediss://127.0.0.1:6379"))
    assert not resp.supports(aioredis.Redis.from_url("redis://h", decode_responses=True))
    cluster = RedisCluster(host="127.0.0.1", port=7000)
    assert not resp.supports(cluster)
