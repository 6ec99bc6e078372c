"""The L3 purge backends: Cloudflare's client against a local server speaking its purge API, and
the nginx cache-file purger against cache files laid out as nginx writes them."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from haetae.cache import (
    CloudflarePurger,
    NginxPurger,
    PurgeRejected,
    PurgeRequest,
    PurgeRetryable,
)

ZONE, TOKEN = "023e105f4ecef8ad9ca31a8372d0c353", "cf-test-token"


@dataclass
class FakeCloudflare:
    """``/client/v4/zones/{zone}/purge_cache`` as Cloudflare answers it; ``script`` holds the
    next answers as (status, headers, body), then every call succeeds."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    async def purge(self, request: web.Request) -> web.Response:
        assert request.match_info["zone"] == ZONE
        self.auth.append(request.headers.get("Authorization"))
        self.calls.append(await request.json())
        if self.script:
            status, headers, body = self.script.pop(0)
            return web.json_response(body, status=status, headers=headers)
        n = len(self.calls)
        return web.json_response(
            {"success": True, "errors": [], "messages": [], "result": {"id": f"purge-{n}"}}
        )


def envelope(code: int, message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": []}


@pytest.fixture
async def cloudflare(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> tuple[FakeCloudflare, str]:
    fake = FakeCloudflare()
    app = web.Application()
    app.router.add_post("/client/v4/zones/{zone}/purge_cache", fake.purge)
    server = await aiohttp_server(app)
    return fake, str(server.make_url("")).rstrip("/")


async def test_purges_by_url_tag_prefix_with_bearer_token(
    cloudflare: tuple[FakeCloudflare, str],
) -> None:
    fake, base = cloudflare
    purger = CloudflarePurger(ZONE, TOKEN, base_url=base)
    try:
        result = await purger.purge(
            PurgeRequest(
                urls=["https://example.com/a"], tags=["t1", "t2"], prefixes=["example.com/img"]
            )
        )
    finally:
        await purger.aclose()
    assert fake.calls == [
        {"files": ["https://example.com/a"]},
        {"tags": ["t1", "t2"]},
        {"prefixes": ["example.com/img"]},
    ]
    assert fake.auth == [f"Bearer {TOKEN}"] * 3
    assert result.calls == 3
    assert result.ids == ["purge-1", "purge-2", "purge-3"]


async def test_purge_everything_is_one_call(cloudflare: tuple[FakeCloudflare, str]) -> None:
    fake, base = cloudflare
    purger = CloudflarePurger(ZONE, TOKEN, base_url=base)
    try:
        await purger.purge(PurgeRequest(everything=True))
    finally:
        await purger.aclose()
    assert fake.calls == [{"purge_everything": True}]


async def test_urls_are_batched_by_thirty(cloudflare: tuple[FakeCloudflare, str]) -> None:
    fake, base = cloudflare
    urls = [f"https://example.com/p/{i}" for i in range(65)]
    purger = CloudflarePurger(ZONE, TOKEN, base_url=base)
    try:
        result = await purger.purge(PurgeRequest(urls=urls))
    finally:
        await purger.aclose()
    assert [len(c["files"]) for c in fake.calls] == [30, 30, 5]
    assert [u for c in fake.calls for u in c["files"]] == urls
    assert result.calls == 3


async def test_429_is_retried_after_retry_after(cloudflare: tuple[FakeCloudflare, str]) -> None:
    fake, base = cloudflare
    fake.script.append((429, {"Retry-After": "0"}, envelope(10000, "rate limited")))
    purger = CloudflarePurger(ZONE, TOKEN, base_url=base, max_retries=1)
    try:
        result = await purger.purge(PurgeRequest(tags=["t"]))
    finally:
        await purger.aclose()
    assert len(fake.calls) == 2
    assert result.ids == ["purge-2"]


async def test_429_past_the_retries_is_retryable_with_retry_after(
    cloudflare: tuple[FakeCloudflare, str],
) -> None:
    fake, base = cloudflare
    fake.script.append((429, {"Retry-After": "7"}, envelope(10000, "rate limited")))
    # A Retry-After longer than max_retry_wait_s is left to the caller at once.
    purger = CloudflarePurger(ZONE, TOKEN, base_url=base, max_retries=3, max_retry_wait_s=1)
    try:
        with pytest.raises(PurgeRetryable) as caught:
            await purger.purge(PurgeRequest(tags=["t"]))
    finally:
        await purger.aclose()
    assert len(fake.calls) == 1
    exc = caught.value
    assert exc.retryable and exc.status == 429 and exc.retry_after_s == 7.0
    assert exc.errors == [{"code": 10000, "message": "rate limited"}]


async def test_5xx_is_retryable(cloudflare: tuple[FakeCloudflare, str]) -> None:
    fake, base = cloudflare
    fake.script.append((502, {}, {}))
    purger = CloudflarePurger(ZONE, TOKEN, base_url=base, max_retries=0)
    try:
        with pytest.raises(PurgeRetryable) as caught:
            await purger.purge(PurgeRequest(urls=["https://example.com/"]))
    finally:
        await purger.aclose()
    assert caught.value.status == 502 and caught.value.retry_after_s is None


@pytest.mark.parametrize("status", [400, 403])
async def test_error_envelope_is_permanent(
    cloudflare: tuple[FakeCloudflare, str], status: int
) -> None:
    fake, base = cloudflare
    fake.script.append((status, {}, envelope(1012, "Request must contain one of files")))
    purger = CloudflarePurger(ZONE, TOKEN, base_url=base, max_retries=3)
    try:
        with pytest.raises(PurgeRejected) as caught:
            await purger.purge(PurgeRequest(tags=["t"]))
    finally:
        await purger.aclose()
    assert len(fake.calls) == 1  # never retried
    exc = caught.value
    assert not exc.retryable and exc.status == status and exc.provider == "cloudflare"
    assert "1012: Request must contain one of files" in str(exc)


async def test_success_false_on_200_is_rejected(cloudflare: tuple[FakeCloudflare, str]) -> None:
    fake, base = cloudflare
    fake.script.append((200, {}, envelope(1234, "odd")))
    purger = CloudflarePurger(ZONE, TOKEN, base_url=base)
    try:
        with pytest.raises(PurgeRejected):
            await purger.purge(PurgeRequest(tags=["t"]))
    finally:
        await purger.aclose()


async def test_unreachable_api_is_retryable(unused_tcp_port: int) -> None:
    purger = CloudflarePurger(
        ZONE, TOKEN, base_url=f"http://127.0.0.1:{unused_tcp_port}", max_retries=0
    )
    try:
        with pytest.raises(PurgeRetryable) as caught:
            await purger.purge(PurgeRequest(tags=["t"]))
    finally:
        await purger.aclose()
    assert isinstance(caught.value.__cause__, Exception)


def write_nginx_file(root: Path, key: str, surrogate: str = "") -> Path:
    """A cache file as nginx 1.22 writes one: binary header, key line, upstream headers, body."""
    digest = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
    path = root / digest[-1] / digest[-3:-1] / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    headers = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    if surrogate:
        headers += f"Surrogate-Key: {surrogate}\r\n"
    path.write_bytes(b"\x05\x00" * 100 + f"\nKEY: {key}\n{headers}\r\n".encode() + b"{}")
    return path


async def test_nginx_purges_by_url_tag_prefix_and_everything(tmp_path: Path) -> None:
    purger = NginxPurger(tmp_path)
    a = write_nginx_file(tmp_path, "http://127.0.0.1:8080/api/a?x=1", "t1 shared")
    b = write_nginx_file(tmp_path, "http://127.0.0.1:8080/api/b", "t2 shared")
    c = write_nginx_file(tmp_path, "http://127.0.0.1:8080/img/c")
    d = write_nginx_file(tmp_path, "http://127.0.0.1:8080/img/d")

    result = await purger.purge(PurgeRequest(urls=["http://127.0.0.1:8080/api/a?x=1"]))
    assert result.removed == 1 and not a.exists() and b.exists()
    assert (await purger.purge(PurgeRequest(tags=["t9"]))).removed == 0
    assert (await purger.purge(PurgeRequest(tags=["shared"]))).removed == 1
    assert not b.exists()
    assert (await purger.purge(PurgeRequest(prefixes=["127.0.0.1:8080/img/c"]))).removed == 1
    assert not c.exists() and d.exists()
    assert (await purger.purge(PurgeRequest(everything=True))).removed == 1
    assert not d.exists()
    await purger.aclose()
