"""Is a page worth sending to the model? Login walls, empty and thin pages are not.

Pure: metadata and the fetch facts in, a verdict out. Every refusal says why, and the reason is a
closed enum (a metrics label and part of the API answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from link_analyzer.extract.metadata import Metadata


class Verdict(StrEnum):
    OK = "ok"
    LOGIN_WALL = "login-wall"
    EMPTY = "empty"
    TOO_SHORT = "too-short"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Quality:
    verdict: Verdict
    reason: str

    @property
    def analysable(self) -> bool:
        return self.verdict is Verdict.OK


_LOGIN_PATH = re.compile(r"/(login|signin|sign-in|accounts/login|i/flow/login|auth)(/|$|\?)", re.I)
_LOGIN_WORDS = re.compile(
    r"\b(log ?in|sign ?in)\b.{0,40}\b(to (continue|see|view)|required)|"
    r"로그인(이)? ?(필요|후)|로그인하고|please log in",
    re.I,
)
_GENERIC_TITLES = frozenset(
    {
        "instagram",
        "tiktok",
        "x",
        "twitter",
        "youtube",
        "naver blog",
        "네이버 블로그",
        "login",
        "log in",
    }
)


def assess(meta: Metadata, final_url: str, *, min_text_chars: int = 40) -> Quality:
    path = urlsplit(final_url).path
    if _LOGIN_PATH.search(path):
        return Quality(Verdict.LOGIN_WALL, f"redirected to a login page ({path})")
    title = (meta.title or "").strip()
    description = (meta.description or "").strip()
    if meta.password_inputs and not description:
        return Quality(Verdict.LOGIN_WALL, "the page is a login form")
    if _LOGIN_WORDS.search(f"{title} {description} {meta.body_text[:500]}") and not meta.images:
        return Quality(Verdict.LOGIN_WALL, "the page asks to log in")
    if not title and not description and not meta.images and not meta.body_text.strip():
        return Quality(Verdict.EMPTY, "no title, description, media or text")
    informative = description or (title if title.lower() not in _GENERIC_TITLES else "")
    if (
        len(informative) + len(meta.body_text) < min_text_chars
        and not meta.images
        and not meta.videos
    ):
        return Quality(Verdict.TOO_SHORT, f"less than {min_text_chars} characters of content")
    return Quality(Verdict.OK, "")
