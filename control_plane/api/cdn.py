"""The CDN (L3): ``POST /admin/cdn/purge`` through the configured backend, and the public,
CDN-cacheable ``GET /api/v1/cache/policy``."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from control_plane.appkeys import CACHE, CONFIG
from haetae.cache import CdnPurger, PurgeRejected, PurgeRequest, PurgeResult, PurgeRetryable
from haetae.web.bodies import json_response, read_json
from haetae.web.cdn import CdnPolicy, cdn_cached
from haetae.web.problem import ProblemError, invalid

_MAX_ITEMS = 1000
_FIELDS = {"urls", "tags", "prefixes", "everything"}
# Every response of the policy route carries this surrogate key: purge it by tag after a change.
POLICY_TAG = "cache-policy"


def _items(body: dict[str, Any], name: str) -> list[str]:
    raw = body.get(name, [])
    if not isinstance(raw, list):
        raise invalid(name, "expected a list of strings")
    if len(raw) > _MAX_ITEMS:
        raise invalid(name, f"at most {_MAX_ITEMS} items")
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item or len(item) > 2048:
            raise invalid(f"{name}[{i}]", "expected a non-empty string of at most 2048 characters")
        if name == "urls":
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise invalid(f"urls[{i}]", "expected an absolute http(s) URL")
        elif name == "prefixes" and ("://" in item or item.startswith("/")):
            raise invalid(f"prefixes[{i}]", "expected host/path, without a scheme")
        elif name == "tags" and any(c in item for c in " ,\t\r\n"):
            raise invalid(f"tags[{i}]", "a tag has no spaces or commas")
    return raw


def parse_purge(body: Any) -> PurgeRequest:
    """The purge a request body asks for (pure; raises the 400 naming the field at fault)."""
    if not isinstance(body, dict):
        raise invalid("body", "expected a JSON object")
    unknown = set(body) - _FIELDS
    if unknown:
        raise invalid(sorted(unknown)[0], "unknown field")
    everything = body.get("everything", False)
    if not isinstance(everything, bool):
        raise invalid("everything", "expected a boolean")
    request = PurgeRequest(
        urls=_items(body, "urls"),
        tags=_items(body, "tags"),
        prefixes=_items(body, "prefixes"),
        everything=everything,
    )
    if everything and (request.urls or request.tags or request.prefixes):
        raise invalid("everything", "everything excludes urls, tags and prefixes")
    if not request:
        raise invalid("urls", "name at least one of urls, tags or prefixes, or everything: true")
    return request


def configured_cdn(request: web.Request, field: str) -> CdnPurger:
    cdn = request.app[CACHE].cdn
    if cdn is None:
        raise ProblemError(
            409,
            "No CDN configured",
            detail="cdn.provider is 'none'",
            type_="cdn-not-configured",
            field=field,
        )
    return cdn


async def purge_cdn(cdn: CdnPurger, purge: PurgeRequest) -> PurgeResult:
    """Purge, with the backend's errors as problems: 503 + Retry-After, or 502 (rejected)."""
    try:
        return await cdn.purge(purge)
    except PurgeRetryable as exc:
        retry = math.ceil(exc.retry_after_s) if exc.retry_after_s is not None else 1
        raise ProblemError(
            503,
            "CDN unavailable",
            detail=str(exc),
            type_="cdn-unavailable",
            headers={"Retry-After": str(retry)},
            extra={"errors": exc.errors},
        ) from exc
    except PurgeRejected as exc:
        raise ProblemError(
            502,
            "CDN rejected the purge",
            detail=str(exc),
            type_="cdn-rejected",
            extra={"errors": exc.errors},
        ) from exc


async def purge(request: web.Request) -> web.Response:
    wanted = parse_purge(await read_json(request))
    result = await purge_cdn(configured_cdn(request, "body"), wanted)
    return json_response(
        {
            **result.view(),
            "urls": list(wanted.urls),
            "tags": list(wanted.tags),
            "prefixes": list(wanted.prefixes),
            "everything": wanted.everything,
        }
    )


@cdn_cached(CdnPolicy(max_age_s=60, s_maxage_s=300, stale_while_revalidate_s=30, tags=[POLICY_TAG]))
async def cache_policy(request: web.Request) -> web.Response:
    """What clients may rely on about our caching: the same for every caller and free of
    secrets, so a CDN may share it; it changes only with the config (purge tag cache-policy)."""
    config = request.app[CONFIG]
    cache = config.cache
    return json_response(
        {
            "layers": ["l1", "l2", "l3"] if config.cdn.provider != "none" else ["l1", "l2"],
            "ttl_s": cache.ttl_s,
            "stale_ttl_s": cache.stale_ttl_s,
            "negative_ttl_s": cache.negative_ttl_s,
            "cdn": config.cdn.provider,
        }
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/admin/cdn/purge", purge)
    app.router.add_get("/api/v1/cache/policy", cache_policy)
