"""The agent's h11-based HTTP client and server against real sockets on loopback: keep-alive,
reconnection after a dropped idle connection, caps, gzip answers, timeouts, and the server's
answers to odd or hostile requests."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from agent_peers import Serve
from aiohttp import web

from agent.http.client import BodyTooLarge, HttpClient, HttpError
from agent.http.server import Answer, HttpServer, Request


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    async with HttpClient(user_agent="test-agent") as c:
        yield c


class Peer:
    """An aiohttp app that counts the TCP connections its requests arrive on."""

    def __init__(self) -> None:
        self.connections: set[int] = set()
        self.seen: list[web.Request] = []
        self.bodies: list[bytes] = []
        self.delay_s = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_get("/gzip", self._gzip)
        app.router.add_get("/big", self._big)
        app.router.add_get("/chunked", self._chunked)
        return app

    def _note(self, request: web.Request) -> None:
        assert request.transport is not None
        self.connections.add(id(request.transport))
        self.seen.append(request)

    async def _echo(self, request: web.Request) -> web.Response:
        self._note(request)
        self.bodies.append(await request.read())
        await asyncio.sleep(self.delay_s)
        return web.Response(text="ok", headers={"Retry-After": "7"})

    async def _gzip(self, request: web.Request) -> web.Response:
        self._note(request)
        body = gzip.compress(b"a" * 500_000)  # small on the wire, large once inflated
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def _big(self, request: web.Request) -> web.Response:
        self._note(request)
        return web.Response(body=b"b" * 300_000)

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(5):
            await resp.write(b"x" * 1000)
        await resp.write_eof()
        return resp


@pytest.fixture
async def peer(serve: Serve) -> tuple[Peer, str]:
    p = Peer()
    return p, await serve(p.app())


async def test_keep_alive_reuses_one_connection(client: HttpClient, peer: tuple[Peer, str]) -> None:
    p, url = peer
    for i in range(5):
        resp = await client.request(
            "POST", f"{url}/echo", body=b"n%d" % i, headers={"X-N": str(i)}, timeout_s=2
        )
        assert (resp.status, resp.body, resp.headers["retry-after"]) == (200, b"ok", "7")
    assert len(p.connections) == 1
    assert p.bodies == [b"n0", b"n1", b"n2", b"n3", b"n4"]
    assert p.seen[0].headers["User-Agent"] == "test-agent"
    assert p.seen[0].headers["X-N"] == "0"


async def test_concurrent_requests_use_separate_connections(
    client: HttpClient, peer: tuple[Peer, str]
) -> None:
    p, url = peer
    p.delay_s = 0.1
    answers = await asyncio.gather(
        *(client.request("GET", f"{url}/echo", timeout_s=2) for _ in range(3))
    )
    assert [a.status for a in answers] == [200, 200, 200]
    assert len(p.connections) == 3


async def test_reconnects_when_the_idle_connection_was_dropped(
    client: HttpClient, serve: Serve
) -> None:
    # A server that answers one request per connection, then closes it without saying so
    # (no `Connection: close`): the client's next request on that connection finds it gone.
    accepted = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for _ in range(3):
            resp = await client.request("GET", f"http://127.0.0.1:{port}/", timeout_s=2)
            assert (resp.status, resp.body) == (200, b"hi")
            await asyncio.sleep(0.05)  # let the close arrive while the connection is idle
        # The same with the close racing the next request: the retry covers it.
        for _ in range(3):
            resp = await client.request("GET", f"http://127.0.0.1:{port}/", timeout_s=2)
            assert resp.body == b"hi"
    finally:
        server.close()
        await server.wait_closed()
    assert accepted == 6


async def test_refused_and_garbage_are_http_errors(client: HttpClient, refused_url: str) -> None:
    with pytest.raises(HttpError, match="cannot connect"):
        await client.request("GET", f"{refused_url}/x", timeout_s=1)
    with pytest.raises(HttpError, match="unsupported URL"):
        await client.request("GET", "ftp://example.org/x", timeout_s=1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(HttpError, match="malformed"):
            await client.request("GET", f"http://127.0.0.1:{port}/", timeout_s=1)
    finally:
        server.close()
        await server.wait_closed()


async def test_timeout(client: HttpClient, peer: tuple[Peer, str]) -> None:
    p, url = peer
    p.delay_s = 1.0
    with pytest.raises(TimeoutError):
        await client.request("GET", f"{url}/echo", timeout_s=0.2)
    p.delay_s = 0.0
    assert (await client.request("GET", f"{url}/echo", timeout_s=2)).body == b"ok"


async def test_caps_gzip_and_chunked_bodies(client: HttpClient, peer: tuple[Peer, str]) -> None:
    _, url = peer
    resp = await client.request("GET", f"{url}/gzip", timeout_s=2, max_body=1 << 20)
    assert resp.body == b"a" * 500_000  # inflated
    with pytest.raises(BodyTooLarge, match="max_bytes"):  # the cap counts inflated bytes
        await client.request("GET", f"{url}/gzip", timeout_s=2, max_body=100_000)
    with pytest.raises(BodyTooLarge, match="300000 bytes"):  # refused by Content-Length
        await client.request("GET", f"{url}/big", timeout_s=2, max_body=100_000)
    cut = await client.request("GET", f"{url}/big", timeout_s=2, max_body=1000, over="truncate")
    assert (cut.status, cut.body, cut.truncated) == (200, b"b" * 1000, True)
    resp = await client.request("GET", f"{url}/chunked", timeout_s=2)
    assert resp.body == b"x" * 5000
    with pytest.raises(BodyTooLarge):
        await client.request("GET", f"{url}/chunked", timeout_s=2, max_body=2500)
    # After all that, the client still works.
    assert (await client.request("GET", f"{url}/echo", timeout_s=2)).status == 200


async def test_closed_client_refuses(peer: tuple[Peer, str]) -> None:
    _, url = peer
    c = HttpClient()
    await c.request("GET", f"{url}/echo", timeout_s=2)
    await c.close()
    with pytest.raises(HttpError, match="closed"):
        await c.request("GET", f"{url}/echo", timeout_s=2)


# -- the server ------------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[tuple[HttpServer, list[str]]]:
    calls: list[str] = []

    def hello() -> Answer:
        calls.append("hello")
        return 200, "text/plain", b"hello\n", {"X-Extra": "1"}

    async def later() -> Answer:
        await asyncio.sleep(0)
        return 503, "application/json", b"{}", {}

    def broken() -> Answer:
        raise RuntimeError("handler bug")

    routes: dict[str, Callable[[], Answer | Awaitable[Answer]]] = {
        "/hello": hello,
        "/later": later,
        "/broken": broken,
    }
    srv = HttpServer(routes, "127.0.0.1", 0)
    await srv.start()
    yield srv, calls
    await srv.stop()


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(3):
            return await reader.read()  # until the server closes
    finally:
        writer.close()


async def test_server_routes_keep_alive_and_head(
    server: tuple[HttpServer, list[str]], client: HttpClient
) -> None:
    srv, calls = server
    base = f"http://127.0.0.1:{srv.port}"
    for _ in range(3):
        resp = await client.request("GET", f"{base}/hello?x=1", timeout_s=2)
        assert (resp.status, resp.body, resp.headers["x-extra"]) == (200, b"hello\n", "1")
        assert resp.headers["content-type"] == "text/plain"
    resp = await client.request("GET", f"{base}/later", timeout_s=2)
    assert (resp.status, resp.body) == (503, b"{}")
    resp = await client.request("HEAD", f"{base}/hello", timeout_s=2)
    assert (resp.status, resp.body, resp.headers["content-length"]) == (200, b"", "6")
    resp = await client.request("GET", f"{base}/nope", timeout_s=2)
    assert resp.status == 404
    resp = await client.request("DELETE", f"{base}/hello", timeout_s=2)
    assert (resp.status, resp.headers["allow"]) == (405, "GET, HEAD")
    assert calls == ["hello"] * 4
    resp = await client.request("GET", f"{base}/broken", timeout_s=2)
    assert resp.status == 500
    assert (await client.request("GET", f"{base}/hello", timeout_s=2)).status == 200
    # Several requests in one write (pipelined) are answered in order on one connection.
    raw = await _raw(
        srv.port or 0,
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert raw.count(b"HTTP/1.1 200") == 1 and raw.count(b"HTTP/1.1 503") == 1


async def test_server_refuses_bad_requests(server: tuple[HttpServer, list[str]]) -> None:
    srv, calls = server
    port = srv.port or 0
    raw = await _raw(port, b"THIS IS NOT HTTP\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400")
    raw = await _raw(port, b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert raw.startswith(b"HTTP/1.1 413")
    raw = await _raw(port, b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000)
    assert raw.startswith(b"HTTP/1.1 431") or raw == b""
    assert calls == []


async def test_server_stop_closes_idle_connections(
    server: tuple[HttpServer, list[str]],
) -> None:
    srv, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await reader.readuntil(b"hello\n")).startswith(b"HTTP/1.1 200")
    async with asyncio.timeout(3):
        await srv.stop()  # the idle keep-alive connection must not hold the stop up
        assert await reader.read() == b""
    writer.close()


async def test_server_post_routes_take_bounded_bodies(client: HttpClient) -> None:
    seen: list[Request] = []

    def take(request: Request) -> Answer:
        seen.append(request)
        return 202, "application/json", b"{}", {}

    srv = HttpServer({}, "127.0.0.1", 0, post_routes={"/in": take}, max_body=1000)
    await srv.start()
    try:
        base = f"http://127.0.0.1:{srv.port}"
        resp = await client.request(
            "POST", f"{base}/in?x=1", body=b"a 1\n", headers={"X-Test": "yes"}, timeout_s=2
        )
        assert resp.status == 202
        assert (seen[0].path, seen[0].body, seen[0].headers["x-test"]) == ("/in", b"a 1\n", "yes")
        resp = await client.request("GET", f"{base}/in", timeout_s=2)
        assert (resp.status, resp.headers["allow"]) == (405, "POST")
        raw = await _raw(
            srv.port or 0, b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
        )
        assert raw.startswith(b"HTTP/1.1 413") and b"application/problem+json" in raw
        chunked = b"POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunked += b"".join(b"200\r\n" + b"a" * 512 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
        assert (await _raw(srv.port or 0, chunked)).startswith(b"HTTP/1.1 413")
        assert len(seen) == 1
    finally:
        await srv.stop()
