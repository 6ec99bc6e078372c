"""Assertions shared by the HTTP tests."""

from __future__ import annotations

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
