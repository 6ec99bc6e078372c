"""Keyless oEmbed: YouTube and TikTok answer it without a key, and it survives consent walls
and bot checks that hide a page's own meta tags. Pure helpers; the fetch is the pipeline's."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import quote, urljoin

import orjson

from link_analyzer.extract.metadata import Metadata
from link_analyzer.platforms import Platform

MAX_OEMBED_BYTES = 64 * 1024

_ENDPOINTS = {
    Platform.YOUTUBE: "https://www.youtube.com/oembed?format=json&url=",
    Platform.TIKTOK: "https://www.tiktok.com/oembed?url=",
}


def oembed_endpoint(platform: Platform, canonical_url: str, discovered: str | None) -> str | None:
    """The page's own discovered endpoint wins; else the platform's known keyless one."""
    if discovered:
        return discovered
    base = _ENDPOINTS.get(platform)
    return base + quote(canonical_url, safe="") if base else None


def parse_oembed(body: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def merge_oembed(meta: Metadata, data: dict[str, Any], endpoint: str) -> Metadata:
    """Fill what the page did not say; the page's own tags keep precedence."""

    def text(key: str) -> str | None:
        value = data.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    images = meta.images
    thumb = text("thumbnail_url")
    thumb = urljoin(endpoint, thumb) if thumb else None
    if thumb and thumb not in images:
        images = (*images, thumb)
    return dataclasses.replace(
        meta,
        title=meta.title or text("title"),
        author=meta.author or text("author_name"),
        site_name=meta.site_name or text("provider_name"),
        kind=meta.kind or text("type"),
        images=images,
        sources=(*meta.sources, "oembed"),
    )
