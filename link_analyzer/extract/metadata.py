"""Page metadata from OpenGraph, Twitter cards and JSON-LD, merged in that order of trust."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import orjson

from link_analyzer.extract.html_meta import RawHead, scan

MAX_MEDIA = 8


@dataclass(frozen=True)
class Metadata:
    title: str | None = None
    description: str | None = None
    site_name: str | None = None
    kind: str | None = None  # og:type / JSON-LD @type
    author: str | None = None
    published: str | None = None
    canonical_url: str | None = None
    language: str | None = None
    images: tuple[str, ...] = ()
    videos: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    oembed_url: str | None = None
    # Which sources contributed ("opengraph", "twitter", "json-ld", "html").
    sources: tuple[str, ...] = ()
    body_text: str = ""
    password_inputs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "description": self.description,
            "site_name": self.site_name,
            "kind": self.kind,
            "author": self.author,
            "published": self.published,
            "canonical_url": self.canonical_url,
            "language": self.language,
            "images": list(self.images),
            "videos": list(self.videos),
            "keywords": list(self.keywords),
            "sources": list(self.sources),
        }


def extract_metadata(html: str, base_url: str) -> Metadata:
    """Pure: HTML text (at least its head) and the URL it came from -> metadata."""
    head = scan(html)
    ld = _jsonld_objects(head)
    ld_main = _main_entity(ld)
    sources: list[str] = []
    if any(k.startswith("og:") for k, _ in head.meta):
        sources.append("opengraph")
    if any(k.startswith("twitter:") for k, _ in head.meta):
        sources.append("twitter")
    if ld_main:
        sources.append("json-ld")
    if head.title or head.first("description"):
        sources.append("html")

    def absolute(urls: list[str]) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for u in urls:
            if u and not u.startswith("data:"):
                out[urljoin(base_url, u)] = None
        return tuple(out)[:MAX_MEDIA]

    images = head.all("og:image") + head.all("og:image:url") + head.all("og:image:secure_url")
    images += head.all("twitter:image") + head.all("twitter:image:src") + _ld_urls(ld_main, "image")
    videos = head.all("og:video") + head.all("og:video:url") + head.all("og:video:secure_url")
    videos += head.all("twitter:player:stream") + _ld_urls(ld_main, "contentUrl")
    canonical = next((href for rel, _, href in head.links if rel == "canonical" and href), None)
    oembed = next(
        (href for rel, typ, href in head.links if "alternate" in rel and "oembed" in typ), None
    )
    keywords = [k.strip() for k in (head.first("keywords") or "").split(",") if k.strip()]
    return Metadata(
        title=head.first("og:title", "twitter:title")
        or _ld_str(ld_main, "headline", "name")
        or head.title
        or None,
        description=head.first("og:description", "twitter:description")
        or _ld_str(ld_main, "description")
        or head.first("description"),
        site_name=head.first("og:site_name", "application-name")
        or _ld_name(ld_main.get("publisher") if ld_main else None),
        kind=head.first("og:type") or (_ld_type(ld_main) if ld_main else None),
        author=head.first("author", "article:author", "twitter:creator")
        or _ld_name(ld_main.get("author") if ld_main else None),
        published=head.first("article:published_time", "og:published_time")
        or _ld_str(ld_main, "datePublished", "uploadDate"),
        canonical_url=urljoin(base_url, canonical) if canonical else head.first("og:url"),
        language=head.first("og:locale") or head.html_lang or None,
        images=absolute(images),
        videos=absolute(videos),
        keywords=tuple(keywords[:20]),
        oembed_url=urljoin(base_url, oembed) if oembed else None,
        sources=tuple(sources),
        body_text=head.body_text,
        password_inputs=head.password_inputs,
    )


def _jsonld_objects(head: RawHead) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in head.jsonld:
        try:
            data = orjson.loads(block.strip())
        except orjson.JSONDecodeError:
            continue  # broken JSON-LD is common; the other sources still count
        stack = data if isinstance(data, list) else [data]
        for item in stack:
            if isinstance(item, dict):
                graph = item.get("@graph")
                if isinstance(graph, list):
                    out.extend(g for g in graph if isinstance(g, dict))
                else:
                    out.append(item)
    return out


_CONTENT_TYPES = (
    "VideoObject",
    "NewsArticle",
    "Article",
    "BlogPosting",
    "SocialMediaPosting",
    "Product",
    "Recipe",
    "Event",
    "WebPage",
)


def _ld_type(obj: dict[str, Any]) -> str | None:
    t = obj.get("@type")
    if isinstance(t, list):
        t = next((x for x in t if isinstance(x, str)), None)
    return t if isinstance(t, str) else None


def _main_entity(objs: list[dict[str, Any]]) -> dict[str, Any]:
    for wanted in _CONTENT_TYPES:
        for obj in objs:
            if _ld_type(obj) == wanted:
                return obj
    return objs[0] if objs else {}


def _ld_str(obj: dict[str, Any] | None, *keys: str) -> str | None:
    for key in keys:
        value = (obj or {}).get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _ld_name(value: Any) -> str | None:
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict):
        name = value.get("name")
        return name.strip() if isinstance(name, str) and name.strip() else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _ld_urls(obj: dict[str, Any] | None, key: str) -> list[str]:
    value = (obj or {}).get(key)
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("url"), str):
            out.append(item["url"])
    return out
