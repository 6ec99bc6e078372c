"""A small HTTP/1.1 server for the agent's own endpoints on loopback: GET /metrics and /health,
and POST routes such as /v1/push.

h11 parses requests and frames answers; this module accepts connections, routes by path, keeps
connections alive between scrapes, and bounds what a client can make it hold: request heads are
capped by h11, request bodies are refused except on POST routes (capped at ``max_body``), idle
connections are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

import h11
import orjson

# (status, content type, body, extra headers)
Answer = tuple[int, str, bytes, dict[str, str]]
Handler = Callable[[], Answer | Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Request:
    """What a POST handler gets: header names are lower-case."""

    path: str
    headers: dict[str, str]
    body: bytes


BodyHandler = Callable[[Request], Answer | Awaitable[Answer]]

_IDLE_S = 60.0  # a keep-alive connection with no request for this long is closed
_READ_S = 10.0  # a started request must arrive within this
_MAX_HEAD = 16 * 1024
_MAX_BODY = 1024 * 1024

_log = logging.getLogger("haetae.agent.http")


class HttpServer:
    """Serves ``routes`` (path -> handler, GET and HEAD) and ``post_routes`` (path -> handler
    of the request, bodies up to ``max_body`` bytes) on ``host:port``; port 0 picks a free one
    (see ``port``)."""

    def __init__(
        self,
        routes: dict[str, Handler],
        host: str,
        port: int,
        *,
        post_routes: dict[str, BodyHandler] | None = None,
        max_body: int = _MAX_BODY,
    ) -> None:
        self._routes = routes
        self._post_routes = dict(post_routes or {})
        self._max_body = max_body
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port: int | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=_MAX_HEAD * 2
        )
        sockets = self._server.sockets
        self.port = int(sockets[0].getsockname()[1]) if sockets else self._port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._connection(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stalled: nothing to answer
        except asyncio.CancelledError:
            pass  # stopping
        except Exception:  # a bug must cost one connection, not the agent
            _log.exception("HTTP connection failed")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        while True:
            got = await self._next_request(conn, reader, writer)
            if got is None:
                return
            request, body = got
            await self._answer(conn, request, body, writer)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _next_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        accepts_body = False
        body = bytearray()
        timeout = _IDLE_S
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._send_error(conn, writer, exc.error_status_hint, str(exc))
                return None
            if event is h11.NEED_DATA:
                async with asyncio.timeout(timeout):
                    data = await reader.read(_MAX_HEAD)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
                timeout = _READ_S
                accepts_body = event.method == b"POST" and _path(event) in self._post_routes
                if accepts_body and _content_length(event) > self._max_body:
                    await self._send_error(conn, writer, 413, "request body too large")
                    return None
                continue
            if isinstance(event, h11.Data):
                if not accepts_body:
                    await self._send_error(conn, writer, 413, "request bodies are not accepted")
                    return None
                body += event.data
                if len(body) > self._max_body:
                    await self._send_error(conn, writer, 413, "request body too large")
                    return None
                continue
            if isinstance(event, h11.EndOfMessage) and request is not None:
                return request, bytes(body)
            return None  # ConnectionClosed or PAUSED

    async def _answer(
        self,
        conn: h11.Connection,
        request: h11.Request,
        payload: bytes,
        writer: asyncio.StreamWriter,
    ) -> None:
        method = request.method
        path = _path(request)
        handler = self._routes.get(path)
        poster = self._post_routes.get(path)
        call: Callable[[], Answer | Awaitable[Answer]] | None = None
        if handler is not None and method in (b"GET", b"HEAD"):
            call = handler
        elif poster is not None and method == b"POST":
            fields = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
            req = Request(path, fields, payload)
            call = lambda: poster(req)  # noqa: E731
        if handler is None and poster is None:
            status, ctype, body, extra = 404, "text/plain; charset=utf-8", b"not found\n", {}
        elif call is None:
            status, ctype, body, extra = (
                405,
                "text/plain; charset=utf-8",
                b"method not allowed\n",
                {"Allow": "GET, HEAD" if handler is not None else "POST"},
            )
        else:
            try:
                result = call()
                if not isinstance(result, tuple):
                    result = await result
                status, ctype, body, extra = result
            except Exception:  # a bug in a handler costs one answer, not the connection
                _log.exception("handler for %s failed", path)
                status, ctype, body, extra = (
                    500,
                    "text/plain; charset=utf-8",
                    b"internal error\n",
                    {},
                )
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
        headers.extend(extra.items())
        data = conn.send(h11.Response(status_code=status, headers=headers)) or b""
        if method != b"HEAD" and body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        writer.write(data)
        await writer.drain()

    async def _send_error(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, message: str
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        body = orjson.dumps(
            {"type": "about:blank", "title": title, "status": status, "detail": message}
        )
        try:
            data = (
                conn.send(
                    h11.Response(
                        status_code=status,
                        headers=[
                            ("Content-Type", "application/problem+json"),
                            ("Content-Length", str(len(body))),
                            ("Connection", "close"),
                        ],
                    )
                )
                or b""
            )
            data += conn.send(h11.Data(data=body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return
        writer.write(data)
        await writer.drain()


def _path(request: h11.Request) -> str:
    return request.target.split(b"?", 1)[0].decode("latin-1")


def _content_length(request: h11.Request) -> int:
    for name, value in request.headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
