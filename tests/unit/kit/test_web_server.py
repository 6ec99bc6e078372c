"""The HTTP protocol level (haetae.web.server), spoken to over raw sockets: aiohttp's own parse
errors are problem+json that echo nothing, and half-sent request heads are closed in time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from haetae.web import problem_middleware
from haetae.web.bodies import HANDLER_ARGS, read_body
from haetae.web.server import HardenedAppRunner

HEADER_TIMEOUT_S = 0.5
MARKER = "zq" * 2000  # hostile input that must never come back


async def _echo_len(request: web.Request) -> web.Response:
    body = await read_body(request, max_bytes=1 << 20, max_decompressed=1 << 20, timeout_s=0.5)
    return web.json_response({"len": len(body)})


async def _hello(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    app = web.Application(middlewares=[problem_middleware], handler_args=HANDLER_ARGS)
    app.router.add_get("/", _hello)
    app.router.add_post("/echo", _echo_len)
    runner = HardenedAppRunner(
        app, header_timeout_s=HEADER_TIMEOUT_S, access_log=None, shutdown_timeout=0.2
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield int(runner.addresses[0][1])
    await runner.cleanup()


async def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw``, read the whole answer until the server closes or the body is complete."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 5)
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


def assert_protocol_problem(
    answer: tuple[int, dict[str, str], bytes], status: int
) -> dict[str, object]:
    got, headers, body = answer
    assert got == status, (got, body[:200])
    assert headers["content-type"].startswith("application/problem+json")
    assert MARKER.encode() not in body and MARKER[:40].encode() not in body
    problem: dict[str, object] = orjson.loads(body)
    assert problem["status"] == status and problem["title"] and problem["type"]
    return problem


async def test_request_line_too_long_is_a_problem_without_echo(port: int) -> None:
    raw = f"GET /{MARKER * 3} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    assert_protocol_problem(await exchange(port, raw), 414)


async def test_header_too_long_is_a_problem_without_echo(port: int) -> None:
    raw = f"GET / HTTP/1.1\r\nHost: x\r\nX-Big: {MARKER * 3}\r\n\r\n".encode()
    assert_protocol_problem(await exchange(port, raw), 431)


async def test_bad_content_length_invalid_method_and_garbage(port: int) -> None:
    bad_length = f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {MARKER[:50]}\r\n\r\n"
    assert_protocol_problem(await exchange(port, bad_length.encode()), 400)
    bad_method = f"G{MARKER[:50]}@T / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert_protocol_problem(await exchange(port, bad_method.encode()), 400)
    garbage = f"{MARKER[:100]}\r\n\r\n"
    assert_protocol_problem(await exchange(port, garbage.encode()), 400)


async def test_bad_chunked_body_is_a_400_problem(port: int) -> None:
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + MARKER[:30].encode()
        + b"\r\nabc\r\n0\r\n\r\n"
    )
    assert_protocol_problem(await exchange(port, raw), 400)


async def test_a_good_request_is_untouched(port: int) -> None:
    status, _, body = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and orjson.loads(body) == {"ok": True}
    status, _, body = await exchange(
        port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    )
    assert status == 200 and orjson.loads(body) == {"len": 3}


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent before closing; fails if it is still open after ``seconds``."""
    return await asyncio.wait_for(reader.read(), seconds)


async def test_half_sent_heads_are_closed_while_good_requests_go_on(port: int) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
    for _, writer in conns:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    loop = asyncio.get_running_loop()
    started = loop.time()
    # Meanwhile a normal client is served at once.
    status, _, _ = await exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    answers = await asyncio.gather(*(_closed_within(r, 10) for r, _ in conns))
    elapsed = loop.time() - started
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert b"application/problem+json" in answer
    # Generous: the deadline is 0.5 s; the point is "not the hour-long keep-alive".
    assert HEADER_TIMEOUT_S * 0.8 <= elapsed < 8
    for _, writer in conns:
        writer.close()


async def test_a_head_dribbled_byte_by_byte_still_meets_the_deadline(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closed = asyncio.ensure_future(_closed_within(reader, 10))
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":
        if closed.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.05)
    answer = await closed
    assert answer.startswith(b"HTTP/1.1 408 ")
    writer.close()


async def test_a_silent_connection_is_closed_without_an_answer(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_within(reader, 10) == b""
    writer.close()


async def test_idle_keep_alive_between_requests_keeps_its_own_timeout(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        # Idle for three header deadlines: a kept-alive connection is not a slow head.
        await asyncio.sleep(HEADER_TIMEOUT_S * 3)
    writer.close()


async def test_a_trickled_body_is_a_408_within_the_body_timeout(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 408 ") and b"application/problem+json" in head
    writer.close()
