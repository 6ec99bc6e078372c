"""Assertions shared by the HTTP tests."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit


async def assert_problem(resp: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status``; returns its body."""
    assert resp.status == status, (resp.status, await resp.text())
    assert resp.content_type == "application/problem+json", resp.content_type
    body = await resp.json(content_type=None)
    assert body["status"] == status
    assert body["title"]
    assert "type" in body
    return body  # type: ignore[no-any-return]


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database on the same server."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


def free_port() -> int:
    """A loopback port for a server started later (often in another process). Chosen below the
    kernel's ephemeral range (32768-60999), so that the outgoing connections of other tests
    running meanwhile cannot take it between this check and the server's bind (seen in CI)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port in 20000-32000")


class CuttableProxy:
    """Loopback TCP -> Redis (TCP or unix socket). ``cut()`` drops every connection and refuses
    new ones until ``restore()``: a network partition between one client and Redis."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self._unix = parts.path if parts.scheme == "unix" else None
        self._addr = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.refusing = False
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        if self._unix:
            up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._addr)
        self._writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    def cut(self) -> None:
        self.refusing = True
        for w in list(self._writers):
            w.close()

    def restore(self) -> None:
        self.refusing = False

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
