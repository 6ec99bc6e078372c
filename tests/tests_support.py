"""Assertions shared by the HTTP tests."""

from __future__ import annotations

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
