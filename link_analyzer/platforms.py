"""Platform recognisers: a normalised URL in, the platform's own content id out.

Pure functions over already-normalised parts (lower-case host without ``www.`` handling done
here, decoded path segments, parsed query). Each recogniser owns its hosts and answers ``None``
when the URL is on its host but is not a content page (profile, search, home): such URLs are still
analysable, keyed by their normalised URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Platform(StrEnum):
    YOUTUBE = "youtube"
    INSTAGRAM = "instagram"
    TIKTOK = "tiktok"
    NAVER_BLOG = "naver_blog"
    X = "x"
    WEB = "web"


@dataclass(frozen=True)
class PlatformMatch:
    """What a recogniser found. ``content_id`` is None for short links (``short=True``): they
    name content only after one redirect hop is resolved."""

    platform: Platform
    kind: str | None = None
    content_id: str | None = None
    canonical_url: str | None = None
    short: bool = False


Query = Mapping[str, Sequence[str]]
Recogniser = Callable[[str, list[str], Query], PlatformMatch | None]

_YT_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_IG_CODE = re.compile(r"^[A-Za-z0-9_-]{5,64}$")
_DIGITS = re.compile(r"^[0-9]{1,25}$")
_TT_USER = re.compile(r"^@[A-Za-z0-9_.]{1,64}$")
_NAVER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHORT_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _first(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def youtube(host: str, segs: list[str], query: Query) -> PlatformMatch | None:
    if host not in _YOUTUBE_HOSTS:
        return None
    vid: str | None = None
    if host == "youtu.be":
        vid = segs[0] if segs else None
    elif segs[:1] == ["watch"]:
        vid = _first(query, "v")
    elif len(segs) >= 2 and segs[0] in ("shorts", "embed", "live", "v", "e"):
        vid = segs[1]
    if vid is None or not _YT_ID.match(vid):
        return PlatformMatch(Platform.YOUTUBE)
    return PlatformMatch(Platform.YOUTUBE, "video", vid, f"https://www.youtube.com/watch?v={vid}")


_YOUTUBE_HOSTS = frozenset(
    {
        "youtube.com",
        "www.youtube.com",
        "m.youtube.com",
        "music.youtube.com",
        "youtube-nocookie.com",
        "www.youtube-nocookie.com",
        "youtu.be",
    }
)


def instagram(host: str, segs: list[str], query: Query) -> PlatformMatch | None:
    if host not in ("instagram.com", "www.instagram.com", "m.instagram.com", "instagr.am"):
        return None
    # /p/<code>, /reel/<code>, /reels/<code>, /tv/<code>, optionally after /<user>/
    for start in (0, 1):
        if len(segs) >= start + 2 and segs[start] in ("p", "reel", "reels", "tv"):
            code = segs[start + 1]
            if _IG_CODE.match(code):
                # Posts, reels and IGTV share one shortcode space; /p/ serves all of them.
                return PlatformMatch(
                    Platform.INSTAGRAM, "post", code, f"https://www.instagram.com/p/{code}/"
                )
    return PlatformMatch(Platform.INSTAGRAM)


def tiktok(host: str, segs: list[str], query: Query) -> PlatformMatch | None:
    if host in ("vm.tiktok.com", "vt.tiktok.com"):
        if segs and _SHORT_CODE.match(segs[0]):
            return PlatformMatch(Platform.TIKTOK, short=True)
        return PlatformMatch(Platform.TIKTOK)
    if host not in ("tiktok.com", "www.tiktok.com", "m.tiktok.com"):
        return None
    if len(segs) >= 2 and segs[0] == "t" and _SHORT_CODE.match(segs[1]):
        return PlatformMatch(Platform.TIKTOK, short=True)
    item: str | None = None
    user: str | None = None
    if len(segs) >= 3 and _TT_USER.match(segs[0]) and segs[1] in ("video", "photo"):
        user, item = segs[0], segs[2]
    elif len(segs) >= 2 and segs[0] == "embed":
        item = segs[2] if len(segs) >= 3 and segs[1] == "v2" else segs[1]
    elif len(segs) >= 2 and segs[0] == "v" and segs[1].endswith(".html"):
        item = segs[1].removesuffix(".html")
    if item is None or not _DIGITS.match(item):
        return PlatformMatch(Platform.TIKTOK)
    # Video and photo posts share one id space.
    canonical = (
        f"https://www.tiktok.com/{user}/video/{item}"
        if user
        else f"https://www.tiktok.com/embed/v2/{item}"
    )
    return PlatformMatch(Platform.TIKTOK, "item", item, canonical)


def naver_blog(host: str, segs: list[str], query: Query) -> PlatformMatch | None:
    if host == "naver.me":
        if segs and _SHORT_CODE.match(segs[0]):
            return PlatformMatch(Platform.NAVER_BLOG, short=True)
        return None
    if host not in ("blog.naver.com", "m.blog.naver.com"):
        return None
    blog_id: str | None = None
    log_no: str | None = None
    if segs and segs[0] in ("PostView.naver", "PostView.nhn", "PostView.nhn.naver"):
        blog_id, log_no = _first(query, "blogId"), _first(query, "logNo")
    elif len(segs) >= 2:
        blog_id, log_no = segs[0], segs[1]
    if not blog_id or not log_no or not _NAVER_ID.match(blog_id) or not _DIGITS.match(log_no):
        return PlatformMatch(Platform.NAVER_BLOG)
    # The mobile page carries the post body inline (the desktop one wraps it in an iframe).
    return PlatformMatch(
        Platform.NAVER_BLOG,
        "post",
        f"{blog_id}/{log_no}",
        f"https://m.blog.naver.com/{blog_id}/{log_no}",
    )


_X_HOSTS = frozenset(
    {
        "twitter.com",
        "www.twitter.com",
        "mobile.twitter.com",
        "x.com",
        "www.x.com",
        "mobile.x.com",
    }
)


def x_twitter(host: str, segs: list[str], query: Query) -> PlatformMatch | None:
    if host == "t.co":
        if segs and _SHORT_CODE.match(segs[0]):
            return PlatformMatch(Platform.X, short=True)
        return PlatformMatch(Platform.X)
    if host not in _X_HOSTS:
        return None
    status: str | None = None
    if len(segs) >= 4 and segs[:3] == ["i", "web", "status"]:
        status = segs[3]
    elif len(segs) >= 3 and segs[1] in ("status", "statuses"):
        status = segs[2]
    if status is None or not _DIGITS.match(status):
        return PlatformMatch(Platform.X)
    return PlatformMatch(Platform.X, "status", status, f"https://x.com/i/status/{status}")


# Order does not matter: hosts are disjoint.
RECOGNISERS: tuple[Recogniser, ...] = (youtube, instagram, tiktok, naver_blog, x_twitter)


def recognise(host: str, segs: list[str], query: Query) -> PlatformMatch:
    for recogniser in RECOGNISERS:
        found = recogniser(host, segs, query)
        if found is not None:
            return found
    return PlatformMatch(Platform.WEB)
