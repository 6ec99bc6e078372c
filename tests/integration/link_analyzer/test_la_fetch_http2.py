"""HTTP/2 where the origin offers it, with the SSRF guard still checking every connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from h2_origin import H2Origin, self_signed, server_context
from la_fakes import ARTICLE, LOOPBACK_POLICY, Origin

from link_analyzer.errors import SsrfRefused
from link_analyzer.extract import extract_page
from link_analyzer.fetch import Fetcher
from link_analyzer.ssrf import AddressPolicy


@pytest.fixture
async def h2_origin(tmp_path: Path) -> AsyncIterator[H2Origin]:
    cert, key = self_signed(tmp_path)
    # The page's head only: under h2's default flow-control window for three streams.
    head = ARTICLE[: ARTICLE.lower().index("</head>") + len("</head>")]
    origin = H2Origin(body=(head + "<body></body></html>").encode(), cert_path=cert)
    server = await origin.serve(server_context(cert, key))
    try:
        yield origin
    finally:
        server.close()
        await server.wait_closed()


async def test_h2_origin_is_fetched_over_one_multiplexed_connection(h2_origin: H2Origin) -> None:
    async with Fetcher(policy=LOOPBACK_POLICY, ssl_context=h2_origin.client_context()) as f:
        pages = await asyncio.gather(*(f.fetch_html(h2_origin.url(f"/a/{i}")) for i in range(3)))
    assert h2_origin.protocols == ["h2"]  # negotiated by ALPN, one connection for all three
    assert h2_origin.connections == 1
    assert sorted(h2_origin.paths) == ["/a/0", "/a/1", "/a/2"]
    assert all(p.status == 200 for p in pages)
    meta = await extract_page(pages[0])
    assert meta.title == "서울 지하철 기본요금 150원 인상"


async def test_guard_still_refuses_h2_connections(h2_origin: H2Origin) -> None:
    async with Fetcher(policy=AddressPolicy(), ssl_context=h2_origin.client_context()) as f:
        with pytest.raises(SsrfRefused):
            await f.fetch_html(h2_origin.url("/a/0"))
    assert h2_origin.connections == 0  # refused before any byte was sent


async def test_http11_origins_still_work_with_http2_enabled(origin: Origin) -> None:
    async with Fetcher(policy=LOOPBACK_POLICY) as f:
        page = await f.fetch_html(origin.url("/article"))
    assert page.status == 200
