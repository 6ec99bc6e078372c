"""Pure parts: the address policy, Retry-After, metadata merging, the quality verdict."""

from __future__ import annotations

import ipaddress

import pytest

from link_analyzer.extract import Verdict, assess, extract_metadata
from link_analyzer.fetch import parse_retry_after
from link_analyzer.ssrf import AddressPolicy, embedded_ipv4

REFUSED = [
    "127.0.0.1",
    "127.255.0.9",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2001:db8::1",
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_policy_refuses(address: str) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_policy_allows_global(address: str) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) is None


def test_policy_allow_list_is_exact() -> None:
    policy = AddressPolicy.allowing(["127.0.0.0/8"])
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::1")) is not None
    assert policy.refusal(ipaddress.ip_address("10.0.0.1")) is not None


def test_embedded_ipv4_forms() -> None:
    v4 = ipaddress.IPv4Address("169.254.169.254")
    for form in ("::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1"):
        assert embedded_ipv4(ipaddress.ip_address(form)) == v4
    assert embedded_ipv4(ipaddress.ip_address("2606:4700::1")) is None


def test_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_metadata_fallbacks_when_opengraph_missing() -> None:
    html = """<html lang="en"><head><title> Plain  title </title>
    <meta name="description" content="Only the HTML description is here, long enough to count.">
    <script type="application/ld+json">[{"@type":"VideoObject","name":"LD name",
      "uploadDate":"2026-01-02","contentUrl":"https://v.example/x.mp4",
      "author":[{"name":"Kim"}]}]</script>
    <script type="application/ld+json">{ not json </script>
    </head><body></body></html>"""
    meta = extract_metadata(html, "https://e.example/a/b")
    assert meta.title == "LD name"  # JSON-LD outranks <title>
    assert meta.description == "Only the HTML description is here, long enough to count."
    assert meta.videos == ("https://v.example/x.mp4",)
    assert meta.author == "Kim" and meta.published == "2026-01-02" and meta.language == "en"
    assert meta.sources == ("json-ld", "html")


@pytest.mark.parametrize(
    ("html", "url", "verdict"),
    [
        ("<html><head></head><body></body></html>", "https://e.com/", Verdict.EMPTY),
        ("<title>x</title>", "https://e.com/accounts/login/", Verdict.LOGIN_WALL),
        ("<title>Instagram</title><input type=password>", "https://e.com/", Verdict.LOGIN_WALL),
        ("<title>Sign in to continue reading</title>", "https://e.com/a", Verdict.LOGIN_WALL),
        ("<title>블로그</title><p>로그인이 필요합니다</p>", "https://e.com/a", Verdict.LOGIN_WALL),
        ("<title>TikTok</title>", "https://e.com/a", Verdict.TOO_SHORT),
        (
            '<meta property="og:description" '
            'content="A real description, comfortably over forty characters.">',
            "https://e.com/a",
            Verdict.OK,
        ),
        (
            '<meta property="og:image" content="/i.jpg"><title>x</title>',
            "https://e.com/",
            Verdict.OK,
        ),
    ],
)
def test_quality(html: str, url: str, verdict: Verdict) -> None:
    assert assess(extract_metadata(html, url), url).verdict is verdict


def test_oembed_endpoints_and_merge() -> None:
    from link_analyzer.extract import merge_oembed, oembed_endpoint, parse_oembed
    from link_analyzer.platforms import Platform

    yt = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert oembed_endpoint(Platform.YOUTUBE, yt, None) == (
        "https://www.youtube.com/oembed?format=json&url="
        "https%3A%2F%2Fwww.youtube.com%2Fwatch%3Fv%3DdQw4w9WgXcQ"
    )
    assert oembed_endpoint(Platform.TIKTOK, "https://t.example/x", None) is not None
    assert oembed_endpoint(Platform.WEB, "https://e.com/", None) is None
    assert oembed_endpoint(Platform.WEB, "https://e.com/", "https://e.com/oe") == "https://e.com/oe"
    assert parse_oembed(b"[1]") is None and parse_oembed(b"{bad") is None
    page = extract_metadata("<title>Page title</title>", "https://e.com/v")
    merged = merge_oembed(
        page,
        {"title": "oEmbed title", "author_name": "kim", "thumbnail_url": "/t.jpg"},
        "https://e.com/oembed?x=1",
    )
    assert merged.title == "Page title" and merged.author == "kim"
    assert merged.images == ("https://e.com/t.jpg",) and merged.sources[-1] == "oembed"
