"""Canonical URLs: a table of real-world link shapes and what they must become."""

from __future__ import annotations

import pytest

from link_analyzer.platforms import Platform
from link_analyzer.urls import RefusalReason, UrlRefused, canonicalize, normalize, url_key

NORMALISED = [
    # RFC 3986 6.2.2: case, percent-encoding, dot segments; 6.2.3: default port, empty path
    ("HTTP://WWW.Example.COM", "http://www.example.com/"),
    ("http://example.com:80/", "http://example.com/"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://example.com/../../x", "http://example.com/x"),
    ("http://example.com/a/b/..", "http://example.com/a/"),
    ("http://example.com/%7euser/%41", "http://example.com/~user/A"),
    ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
    ("http://example.com/sp ace", "http://example.com/sp%20ace"),
    ("http://example.com/100%", "http://example.com/100%25"),
    ("http://example.com/한글", "http://example.com/%ED%95%9C%EA%B8%80"),
    ("http://example.com/x#frag", "http://example.com/x"),
    ("http://example.com.", "http://example.com/"),
    ("  https://example.com/  ", "https://example.com/"),
    ("example.com/path", "https://example.com/path"),
    ("www.example.com:8080/x", "https://www.example.com:8080/x"),
    ("//example.com/x", "https://example.com/x"),
    # IDNA
    ("https://bücher.de/", "https://xn--bcher-kva.de/"),
    ("https://BÜCHER.de/", "https://xn--bcher-kva.de/"),
    ("https://네이버.한국/", "https://xn--950bt9s8xi.xn--3e0b707e/"),
    # IPv4 spellings become dotted quads so the SSRF guard sees one form
    ("http://2130706433/", "http://127.0.0.1/"),
    ("http://0x7f000001/", "http://127.0.0.1/"),
    ("http://0x7f.1/", "http://127.0.0.1/"),
    ("http://017700000001/", "http://127.0.0.1/"),
    ("http://127.1/", "http://127.0.0.1/"),
    ("http://[::FFFF:127.0.0.1]/", "http://[::ffff:7f00:1]/"),
    ("http://[2001:DB8:0:0::1]:8080/", "http://[2001:db8::1]:8080/"),
    # Query: tracking parameters dropped, others kept and sorted
    ("https://e.com/?utm_source=a&utm_MEDIUM=b&id=3", "https://e.com/?id=3"),
    ("https://e.com/?fbclid=x&gclid=y&igshid=z&si=q&mc_cid=1", "https://e.com/"),
    ("https://e.com/?b=2&a=1&a=0", "https://e.com/?a=1&a=0&b=2"),
    ("https://e.com/?q=a%26b&flag", "https://e.com/?flag&q=a%26b"),
    ("https://e.com/?q=%7e+x", "https://e.com/?q=~+x"),
    ("https://e.com/?", "https://e.com/"),
]


@pytest.mark.parametrize(("raw", "want"), NORMALISED)
def test_normalize(raw: str, want: str) -> None:
    assert normalize(raw) == want


YT = "dQw4w9WgXcQ"
PLATFORMS = [
    # YouTube: watch, youtu.be, shorts, embed, live, m., music., nocookie
    (f"https://www.youtube.com/watch?v={YT}&t=42&si=abc", Platform.YOUTUBE, f"youtube:video:{YT}"),
    (f"https://youtu.be/{YT}?si=xyz", Platform.YOUTUBE, f"youtube:video:{YT}"),
    (f"https://youtube.com/shorts/{YT}", Platform.YOUTUBE, f"youtube:video:{YT}"),
    (f"https://www.youtube.com/embed/{YT}?autoplay=1", Platform.YOUTUBE, f"youtube:video:{YT}"),
    (f"https://www.youtube.com/live/{YT}", Platform.YOUTUBE, f"youtube:video:{YT}"),
    (f"https://m.youtube.com/watch?feature=share&v={YT}", Platform.YOUTUBE, f"youtube:video:{YT}"),
    (f"https://music.youtube.com/watch?v={YT}&list=RD", Platform.YOUTUBE, f"youtube:video:{YT}"),
    (f"https://www.youtube-nocookie.com/embed/{YT}", Platform.YOUTUBE, f"youtube:video:{YT}"),
    ("https://www.youtube.com/@channel", Platform.YOUTUBE, "url:https://www.youtube.com/@channel"),
    # Instagram: p, reel, reels, tv, user-prefixed, instagr.am
    (
        "https://www.instagram.com/p/C1a2B3c4D5e/?igsh=MTc",
        Platform.INSTAGRAM,
        "instagram:post:C1a2B3c4D5e",
    ),
    ("https://instagram.com/reel/C1a2B3c4D5e/", Platform.INSTAGRAM, "instagram:post:C1a2B3c4D5e"),
    (
        "https://www.instagram.com/reels/C1a2B3c4D5e",
        Platform.INSTAGRAM,
        "instagram:post:C1a2B3c4D5e",
    ),
    ("https://www.instagram.com/tv/C1a2B3c4D5e/", Platform.INSTAGRAM, "instagram:post:C1a2B3c4D5e"),
    (
        "https://www.instagram.com/someone/p/C1a2B3c4D5e/",
        Platform.INSTAGRAM,
        "instagram:post:C1a2B3c4D5e",
    ),
    (
        "https://www.instagram.com/someone/reel/C1a2B3c4D5e/",
        Platform.INSTAGRAM,
        "instagram:post:C1a2B3c4D5e",
    ),
    ("http://instagr.am/p/C1a2B3c4D5e", Platform.INSTAGRAM, "instagram:post:C1a2B3c4D5e"),
    # TikTok: video, photo, embed, m.; short links need one resolved hop
    (
        "https://www.tiktok.com/@user.name/video/7234567890123456789?is_from_webapp=1",
        Platform.TIKTOK,
        "tiktok:item:7234567890123456789",
    ),
    (
        "https://www.tiktok.com/@user/photo/7234567890123456789",
        Platform.TIKTOK,
        "tiktok:item:7234567890123456789",
    ),
    (
        "https://www.tiktok.com/embed/v2/7234567890123456789",
        Platform.TIKTOK,
        "tiktok:item:7234567890123456789",
    ),
    (
        "https://www.tiktok.com/embed/7234567890123456789",
        Platform.TIKTOK,
        "tiktok:item:7234567890123456789",
    ),
    (
        "https://m.tiktok.com/v/7234567890123456789.html",
        Platform.TIKTOK,
        "tiktok:item:7234567890123456789",
    ),
    ("https://vm.tiktok.com/ZMhvqKp7x/", Platform.TIKTOK, "short:https://vm.tiktok.com/ZMhvqKp7x/"),
    ("https://vt.tiktok.com/ZSabc123/", Platform.TIKTOK, "short:https://vt.tiktok.com/ZSabc123/"),
    # Naver blog: blog., m.blog., PostView.naver/.nhn, naver.me
    (
        "https://blog.naver.com/myblog/223456789012",
        Platform.NAVER_BLOG,
        "naver_blog:post:myblog/223456789012",
    ),
    (
        "https://m.blog.naver.com/myblog/223456789012?referrerCode=1",
        Platform.NAVER_BLOG,
        "naver_blog:post:myblog/223456789012",
    ),
    (
        "https://blog.naver.com/PostView.naver?blogId=myblog&logNo=223456789012&from=search",
        Platform.NAVER_BLOG,
        "naver_blog:post:myblog/223456789012",
    ),
    (
        "https://blog.naver.com/PostView.nhn?blogId=myblog&logNo=223456789012",
        Platform.NAVER_BLOG,
        "naver_blog:post:myblog/223456789012",
    ),
    (
        "https://m.blog.naver.com/PostView.naver?logNo=223456789012&blogId=myblog",
        Platform.NAVER_BLOG,
        "naver_blog:post:myblog/223456789012",
    ),
    ("https://naver.me/xAbC12dE", Platform.NAVER_BLOG, "short:https://naver.me/xAbC12dE"),
    # X / Twitter
    ("https://twitter.com/jack/status/20", Platform.X, "x:status:20"),
    (
        "https://x.com/jack/status/1790000000000000000?s=20&t=abc",
        Platform.X,
        "x:status:1790000000000000000",
    ),
    ("https://mobile.twitter.com/jack/status/20/photo/1", Platform.X, "x:status:20"),
    ("https://twitter.com/i/web/status/20", Platform.X, "x:status:20"),
    ("https://www.x.com/jack/statuses/20", Platform.X, "x:status:20"),
    ("https://t.co/AbCdEf123", Platform.X, "short:https://t.co/AbCdEf123"),
    # Anything else
    (
        "https://news.example.co.kr/article/1?utm_campaign=x",
        Platform.WEB,
        "url:https://news.example.co.kr/article/1",
    ),
]


@pytest.mark.parametrize(("raw", "platform", "identity"), PLATFORMS)
def test_platform_identity(raw: str, platform: Platform, identity: str) -> None:
    got = canonicalize(raw)
    assert got.platform is platform
    assert got.identity == identity
    assert got.key == url_key(identity)
    assert got.short == identity.startswith("short:")


def test_canonical_fetch_urls() -> None:
    assert canonicalize(f"https://youtu.be/{YT}").url == f"https://www.youtube.com/watch?v={YT}"
    assert canonicalize("https://instagram.com/reel/C1a2B3c4D5e").url == (
        "https://www.instagram.com/p/C1a2B3c4D5e/"
    )
    assert canonicalize("https://blog.naver.com/PostView.nhn?blogId=b&logNo=1").url == (
        "https://m.blog.naver.com/b/1"
    )
    assert canonicalize("https://twitter.com/a/status/5").url == "https://x.com/i/status/5"


def test_key_is_stable_and_short() -> None:
    a = canonicalize(f"https://youtu.be/{YT}")
    b = canonicalize(f"https://m.youtube.com/watch?v={YT}&utm_source=x")
    assert a.key == b.key
    assert len(a.key) == 32 and int(a.key, 16) >= 0
    assert canonicalize("https://e.com/?b=1&a=2").key == canonicalize("https://E.com/?a=2&b=1").key
    # Golden: the key must not change between releases (it names cache entries).
    assert url_key("youtube:video:dQw4w9WgXcQ") == "12ff67403c40dfe0feac5bf2035e9000"


REFUSED = [
    ("", RefusalReason.EMPTY),
    ("   ", RefusalReason.EMPTY),
    ("javascript:alert(1)", RefusalReason.SCHEME),
    ("JavaScript:alert(1)", RefusalReason.SCHEME),
    ("data:text/html,<b>x</b>", RefusalReason.SCHEME),
    ("file:///etc/passwd", RefusalReason.SCHEME),
    ("ftp://example.com/x", RefusalReason.SCHEME),
    ("gopher://example.com/", RefusalReason.SCHEME),
    ("mailto:a@example.com", RefusalReason.SCHEME),
    ("http://", RefusalReason.NO_HOST),
    ("https:///path", RefusalReason.NO_HOST),
    ("/relative/path", RefusalReason.NO_HOST),
    ("http://user:pw@example.com/", RefusalReason.CREDENTIALS),
    ("http://example.com:99999/", RefusalReason.BAD_PORT),
    ("http://example.com:0/", RefusalReason.BAD_PORT),
    ("http://example.com:8o/", RefusalReason.BAD_PORT),
    ("http://exa mple.com/", RefusalReason.BAD_HOST),
    ("http://exa\nmple.com/", RefusalReason.BAD_HOST),
    ("http://256.1.1.1/", RefusalReason.BAD_HOST),
    ("http://1.2.3.4.5/", RefusalReason.BAD_HOST),
    ("http://0x1g.1/", RefusalReason.BAD_HOST),
    ("http://[::1/", RefusalReason.BAD_HOST),
    ("http://[fe80::1%25eth0]/", RefusalReason.BAD_HOST),
    ("http://-bad-.com/", RefusalReason.BAD_HOST),
    ("https://e.com/" + "a" * 5000, RefusalReason.TOO_LONG),
]


@pytest.mark.parametrize(("raw", "reason"), REFUSED)
def test_refused(raw: str, reason: RefusalReason) -> None:
    with pytest.raises(UrlRefused) as info:
        canonicalize(raw)
    assert info.value.reason is reason
    assert info.value.detail
