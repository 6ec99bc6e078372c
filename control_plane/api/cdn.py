"""The CDN (L3): ``POST /admin/cdn/purge`` through the configured backend, and the public,
CDN-cacheable ``GET /api/v1/cache/policy``."""

from __future__ import annotations

import math
from typing import Annotated, Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import AfterValidator, Field, StrictBool

from control_plane.appkeys import CACHE, CONFIG
from haetae.cache import CdnPurger, PurgeRejected, PurgeRequest, PurgeResult, PurgeRetryable
from haetae.web import validation
from haetae.web.bodies import json_response, read_json
from haetae.web.cdn import CdnPolicy, cdn_cached
from haetae.web.problem import ProblemError, invalid

_MAX_ITEMS = 1000
_MAX_ITEM = 2048
# Every response of the policy route carries this surrogate key: purge it by tag after a change.
POLICY_TAG = "cache-policy"


def _absolute_url(item: str) -> str:
    parts = urlsplit(item)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an absolute http(s) URL")
    return item


def _prefix(item: str) -> str:
    if "://" in item or item.startswith("/"):
        raise ValueError("expected host/path, without a scheme")
    return item


def _tag(item: str) -> str:
    if any(c in item for c in " ,\t\r\n"):
        raise ValueError("a tag has no spaces or commas")
    return item


Item = Annotated[str, validation.Text(_MAX_ITEM, min_length=1)]


ItemList = Field(max_length=_MAX_ITEMS)


class PurgeBody(validation.Model):
    urls: Annotated[list[Annotated[Item, AfterValidator(_absolute_url)]], ItemList] = []
    tags: Annotated[list[Annotated[Item, AfterValidator(_tag)]], ItemList] = []
    prefixes: Annotated[list[Annotated[Item, AfterValidator(_prefix)]], ItemList] = []
    everything: StrictBool = False


def parse_purge(body: Any) -> PurgeRequest:
    """The purge a request body asks for (pure; raises the 400 naming the field at fault)."""
    wanted = validation.validate(PurgeBody, body, where="body")
    request = PurgeRequest(
        urls=list(wanted.urls),
        tags=list(wanted.tags),
        prefixes=list(wanted.prefixes),
        everything=wanted.everything,
    )
    if wanted.everything and (request.urls or request.tags or request.prefixes):
        raise invalid("body.everything", "everything excludes urls, tags and prefixes")
    if not request:
        raise invalid(
            "body.urls", "name at least one of urls, tags or prefixes, or everything: true"
        )
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
