"""A small keep-alive HTTP/1.1 client: the app scrape, the health probe and the report POSTs.

h11 does the protocol (framing, chunked bodies, keep-alive rules); this module owns sockets, a
per-origin pool of idle connections, timeouts, body caps and gzip/deflate answers. A request that
fails on a reused connection before any answer arrived (the peer closed it while idle) is retried
once on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import h11

_READ = 64 * 1024
_MAX_IDLE_PER_ORIGIN = 4


class HttpError(Exception):
    """No usable answer: refused, reset, closed early, malformed, or a body over its cap."""


class BodyTooLarge(HttpError):
    pass


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    # True when the body was cut at the cap (``over="truncate"``).
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


class _Conn:
    __slots__ = ("h11", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)

    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        self.writer.close()


class _NoAnswer(HttpError):
    """The connection died before any byte of an answer: safe to retry on a fresh one."""


class HttpClient:
    """``await client.request("GET", url, timeout_s=2)``; ``await client.close()`` at the end."""

    def __init__(self, *, user_agent: str = "haetae-agent") -> None:
        self._user_agent = user_agent
        self._idle: dict[_Origin, list[_Conn]] = {}
        self._origins: dict[str, tuple[_Origin, str]] = {}
        self._requests: dict[tuple[str, str, tuple[tuple[str, str], ...]], h11.Request] = {}
        self._ssl: object | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout_s: float,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        max_body: int = 16 * 1024 * 1024,
        over: Literal["raise", "truncate"] = "raise",
    ) -> Response:
        """Send one request and read the whole answer within ``timeout_s`` (TimeoutError).

        An answer body over ``max_body`` (counted after decompression) raises ``BodyTooLarge``,
        or with ``over="truncate"`` returns its first ``max_body`` bytes.
        """
        if self._closed:
            raise HttpError("the HTTP client is closed")
        origin, target = self._split(url)
        event = self._request_event(method, url, origin, target, headers, body)
        async with asyncio.timeout(timeout_s):
            while True:
                conn, reused = await self._acquire(origin)
                try:
                    response = await self._exchange(conn, event, body, max_body, over)
                except _NoAnswer:
                    conn.close()
                    if reused:
                        continue  # the idle connection was gone; once more on a new one
                    raise
                except BaseException:
                    conn.close()
                    raise
                self._release(origin, conn)
                return response

    async def close(self) -> None:
        self._closed = True
        conns = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                await conn.writer.wait_closed()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals ---------------------------------------------------------------------------

    def _request_event(
        self,
        method: str,
        url: str,
        origin: _Origin,
        target: str,
        headers: dict[str, str] | None,
        body: bytes,
    ) -> h11.Request:
        # A scrape or probe sends the same request every cycle: h11 validates it once.
        key = (method, url, tuple(headers.items()) if headers else ()) if not body else None
        if key is not None and (cached := self._requests.get(key)) is not None:
            return cached
        head = [("Host", origin.host_header), ("User-Agent", self._user_agent)]
        if headers:
            head.extend(headers.items())
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(("Content-Length", str(len(body))))
        try:
            event = h11.Request(method=method, target=target, headers=head)
        except h11.LocalProtocolError as exc:
            raise HttpError(f"cannot send the request: {exc}") from exc
        if key is not None and len(self._requests) < 64:
            self._requests[key] = event
        return event

    def _split(self, url: str) -> tuple[_Origin, str]:
        known = self._origins.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"unsupported URL {url!r} (http or https with a host)")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise HttpError(f"bad port in {url!r}") from exc
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        split = (_Origin(scheme, parts.hostname, port), target)
        if len(self._origins) < 64:  # the agent talks to a handful of URLs
            self._origins[url] = split
        return split

    async def _acquire(self, origin: _Origin) -> tuple[_Conn, bool]:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn, True
            conn.close()
        ssl_ctx = None
        if origin.scheme == "https":
            if self._ssl is None:
                import ssl

                self._ssl = ssl.create_default_context()
            ssl_ctx = self._ssl
        try:
            reader, writer = await asyncio.open_connection(
                origin.host,
                origin.port,
                ssl=ssl_ctx,
                limit=_READ,
            )
        except OSError as exc:
            raise HttpError(f"cannot connect to {origin.host}:{origin.port}: {exc}") from exc
        return _Conn(reader, writer), False

    def _release(self, origin: _Origin, conn: _Conn) -> None:
        state = conn.h11
        if self._closed or state.our_state is not h11.DONE or state.their_state is not h11.DONE:
            conn.close()
            return
        state.start_next_cycle()
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= _MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        idle.append(conn)

    async def _exchange(
        self,
        conn: _Conn,
        request: h11.Request,
        body: bytes,
        max_body: int,
        over: str,
    ) -> Response:
        state = conn.h11
        try:
            data = state.send(request)
            if body:
                data += state.send(h11.Data(data=body))
            data += state.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise HttpError(f"cannot send the request: {exc}") from exc
        try:
            conn.writer.write(data)
            await conn.writer.drain()
        except OSError as exc:
            raise _NoAnswer(f"connection lost while sending: {exc}") from exc

        answered = False  # any byte of an answer seen: from then on, never retried
        status = 0
        headers: dict[str, str] = {}
        chunks: list[bytes] = []
        size = 0
        truncated = False
        inflate: zlib._Decompress | None = None
        while True:
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpError(f"malformed answer: {exc}") from exc
            if event is h11.NEED_DATA:
                try:
                    chunk = await conn.reader.read(_READ)
                except OSError as exc:
                    if not answered:
                        raise _NoAnswer(f"connection lost: {exc}") from exc
                    raise HttpError(f"connection lost mid-answer: {exc}") from exc
                if not chunk and not answered:
                    raise _NoAnswer("the server closed the connection without answering")
                answered = True
                try:
                    state.receive_data(chunk)
                except h11.RemoteProtocolError as exc:
                    raise HttpError(f"malformed answer: {exc}") from exc
                continue
            kind = type(event)
            if kind is h11.Response:
                status = event.status_code  # type: ignore[union-attr]
                headers = {
                    k.decode("latin-1"): v.decode("latin-1")
                    for k, v in event.headers  # type: ignore[union-attr]
                }
                length = headers.get("content-length")
                too_long = length is not None and length.isdigit() and int(length) > max_body
                if too_long and over == "raise":
                    raise BodyTooLarge(f"body of {length} bytes exceeds max_bytes ({max_body})")
                encoding = headers.get("content-encoding", "").strip().lower()
                if encoding in ("gzip", "x-gzip"):
                    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                elif encoding == "deflate":
                    inflate = zlib.decompressobj()
            elif kind is h11.Data:
                piece = bytes(event.data)  # type: ignore[union-attr]
                if inflate is not None:
                    try:
                        piece = inflate.decompress(piece, max_body + 1 - size)
                    except zlib.error as exc:
                        raise HttpError(f"bad {encoding} body: {exc}") from exc
                size += len(piece)
                chunks.append(piece)
                if size > max_body:
                    if over == "raise":
                        raise BodyTooLarge(f"body exceeds max_bytes ({max_body})")
                    truncated = True
                    conn.close()  # the rest is never read: this connection cannot be reused
                    break
            elif kind is h11.EndOfMessage:
                break
            elif kind is h11.ConnectionClosed:
                raise HttpError("the server closed the connection mid-answer")
            # InformationalResponse (1xx): keep reading for the final answer.
        body_out = b"".join(chunks)
        if truncated:
            body_out = body_out[:max_body]
        return Response(status, headers, body_out, truncated)
