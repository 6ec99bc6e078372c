"""The guarded fetcher against a real local origin: limits, redirects, SSRF refusals."""

from __future__ import annotations

import asyncio

import pytest
from la_fakes import LOOPBACK_POLICY, Origin

from link_analyzer.errors import (
    FetchTimeout,
    SsrfRefused,
    TooManyRedirects,
    UpstreamStatus,
)
from link_analyzer.extract import Verdict, assess, extract_page
from link_analyzer.fetch import Fetcher, FetchLimits
from link_analyzer.ssrf import AddressPolicy


async def test_article_head_only_and_metadata(origin: Origin) -> None:
    async with Fetcher(policy=LOOPBACK_POLICY) as f:
        page = await f.fetch_html(origin.url("/article"))
    assert page.status == 200 and not page.truncated
    # Reading stopped after </head>: the 40 kB body was not downloaded in full.
    assert b"</head>" in page.body.lower() and len(page.body) < 20_000
    meta = await extract_page(page)
    assert meta.title == "서울 지하철 기본요금 150원 인상"
    assert meta.description and meta.description.startswith("서울시는")
    assert meta.images[0] == origin.url("/img/subway.jpg")
    assert "https://cdn.example/a.jpg" in meta.images
    assert meta.author == "@reporter"
    assert meta.published == "2026-11-20T09:00:00+09:00"
    assert meta.canonical_url == origin.url("/news/2026/subway-fare")
    assert set(meta.sources) == {"opengraph", "twitter", "json-ld", "html"}
    assert assess(meta, page.final_url).verdict is Verdict.OK


async def test_redirect_chain_within_limit_and_beyond(origin: Origin) -> None:
    async with Fetcher(policy=LOOPBACK_POLICY) as f:
        page = await f.fetch_html(origin.url("/redirect/5"))
        assert page.final_url.endswith("/article") and len(page.redirects) == 5
        with pytest.raises(TooManyRedirects):
            await f.fetch_html(origin.url("/redirect/6"))


async def test_login_wall_and_empty_page_detected(origin: Origin) -> None:
    async with Fetcher(policy=LOOPBACK_POLICY) as f:
        walled = await f.fetch_html(origin.url("/p/abc/"))
        empty = await f.fetch_html(origin.url("/empty"))
    assert assess(await extract_page(walled), walled.final_url).verdict is Verdict.LOGIN_WALL
    assert assess(await extract_page(empty), empty.final_url).verdict is Verdict.EMPTY


async def test_huge_page_cut_at_cap_and_slow_page_hits_deadline(origin: Origin) -> None:
    limits = FetchLimits(html_max_bytes=64 * 1024, total_timeout_s=0.5)
    async with Fetcher(limits, LOOPBACK_POLICY) as f:
        page = await f.fetch_html(origin.url("/huge"))
        assert page.truncated and len(page.body) == 64 * 1024
        with pytest.raises(FetchTimeout) as info:
            await f.fetch_html(origin.url("/slow?s=5"))
    assert info.value.retryable


async def test_retry_after_short_is_waited_long_is_reported(origin: Origin) -> None:
    async with Fetcher(policy=LOOPBACK_POLICY) as f:
        page = await f.fetch_html(origin.url("/limited?ra=1"))
        assert page.status == 200 and origin.hits["/limited"] == 2
    origin.hits.clear()
    async with Fetcher(policy=LOOPBACK_POLICY) as f:
        with pytest.raises(UpstreamStatus) as info:
            await f.fetch_html(origin.url("/limited?ra=120"))
    assert info.value.status == 429 and info.value.retry_after_s == 120
    assert info.value.retryable


async def test_per_host_rate_spaces_request_starts(origin: Origin) -> None:
    limits = FetchLimits(per_host_concurrency=8, per_host_rate_per_s=10)
    async with Fetcher(limits, LOOPBACK_POLICY) as f:
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(f.fetch_html(origin.url("/article")) for _ in range(5)))
        took = asyncio.get_running_loop().time() - started
    assert took >= 0.39  # five starts at 10/s need at least four intervals


async def test_per_host_concurrency_is_bounded(origin: Origin) -> None:
    async with Fetcher(FetchLimits(per_host_concurrency=2), LOOPBACK_POLICY) as f:
        results = await asyncio.gather(*(f.fetch_html(origin.url(f"/gate/{i}")) for i in range(6)))
        assert len(f._host_slots) == 0  # no per-host state left behind
    assert all(r.status == 200 for r in results)
    assert origin.max_in_flight == 2


async def test_media_fetched_in_parallel_failures_in_place(origin: Origin) -> None:
    async with Fetcher(policy=LOOPBACK_POLICY) as f:
        got = await f.fetch_many([origin.url("/img/a.png"), origin.url("/missing.png")])
    assert not isinstance(got[0], Exception) and got[0].body.startswith(b"\x89PNG")
    assert isinstance(got[1], UpstreamStatus) and got[1].status == 404 and not got[1].retryable


# --- SSRF: the production policy refuses every one of these before any byte is sent ----------

REFUSED_TARGETS = [
    "http://127.0.0.1:{port}/article",  # loopback
    "http://localhost:{port}/article",  # a name resolving inside
    "http://2130706433:{port}/article",  # decimal IPv4
    "http://0x7f000001:{port}/article",  # hex IPv4
    "http://[::1]:{port}/article",  # IPv6 loopback
    "http://[::ffff:127.0.0.1]:{port}/article",  # IPv4-mapped
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/",  # IPv4-mapped metadata
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of the metadata address
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://0.0.0.0:{port}/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
]


@pytest.mark.parametrize("target", REFUSED_TARGETS)
async def test_ssrf_refused_with_production_policy(origin: Origin, target: str) -> None:
    url = target.format(port=origin.server.port)
    async with Fetcher(FetchLimits(total_timeout_s=3), AddressPolicy()) as f:
        with pytest.raises(SsrfRefused) as info:
            await f.fetch_html(url)
    assert not info.value.retryable
    assert origin.hits == {}


@pytest.mark.parametrize(
    "inside",
    [
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:192.168.0.1]/",
        "http://[::1]:{port}/article",
    ],
)
async def test_redirect_into_private_space_refused(origin: Origin, inside: str) -> None:
    # The origin itself is allowed (loopback IPv4), the redirect target is not.
    target = inside.format(port=origin.server.port)
    async with Fetcher(FetchLimits(total_timeout_s=3), LOOPBACK_POLICY) as f:
        with pytest.raises(SsrfRefused):
            await f.fetch_html(origin.url("/to") + "?to=" + target)
    assert origin.hits == {"/to": 1}


async def test_proxy_variables_ignored(origin: Origin, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy would connect on our behalf, past the guard; it must never be used.
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.9.9.9:3128")
    async with Fetcher(policy=LOOPBACK_POLICY) as f:
        page = await f.fetch_html(origin.url("/article"))
    assert page.status == 200


async def test_short_link_resolved_by_one_guarded_hop(origin: Origin) -> None:
    async with Fetcher(policy=LOOPBACK_POLICY) as f:
        assert (await f.resolve_redirect(origin.url("/redirect/1"))).endswith("/article")
        assert await f.resolve_redirect(origin.url("/article")) == origin.url("/article")
        with pytest.raises(SsrfRefused):
            await f.resolve_redirect("http://10.0.0.1/x")
