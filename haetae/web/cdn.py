"""Cache headers for responses a CDN may cache and share between users.

Mark a handler with :func:`cdn_cached`; its successful responses then carry ``Cache-Control``
(``public, max-age, s-maxage, stale-while-revalidate``), a strong ``ETag`` (a hash of the body),
and the surrogate keys a purge by tag names (``Cache-Tag`` for Cloudflare, ``Surrogate-Key`` for
Fastly-style edges and our nginx purger). A matching ``If-None-Match`` gets a 304.

Only for answers that are the same for every caller: never for ``/admin`` or per-user data.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class CdnPolicy:
    max_age_s: int = 60  # browsers
    s_maxage_s: int = 300  # shared caches (the CDN); a purge ends it early
    stale_while_revalidate_s: int = 30
    tags: Sequence[str] = ()

    def cache_control(self) -> str:
        return (
            f"public, max-age={self.max_age_s}, s-maxage={self.s_maxage_s}, "
            f"stale-while-revalidate={self.stale_while_revalidate_s}"
        )


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _if_none_match(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # Weak comparison, as RFC 9110 asks for If-None-Match: W/"x" matches "x".
    candidates = (t.strip().removeprefix("W/") for t in header.split(","))
    return etag in candidates


def apply_cdn_headers(
    request: web.Request,
    response: web.StreamResponse,
    policy: CdnPolicy,
    extra_tags: Sequence[str] = (),
) -> web.StreamResponse:
    """Set the CDN headers on a 200 with a body; a 304 instead if the client has this body."""
    if response.status != 200 or not isinstance(response, web.Response):
        return response
    body = response.body
    if not isinstance(body, bytes):
        return response
    etag = strong_etag(body)
    headers = {"Cache-Control": policy.cache_control(), "ETag": etag}
    tags = [*policy.tags, *extra_tags]
    if tags:
        headers["Cache-Tag"] = ",".join(tags)
        headers["Surrogate-Key"] = " ".join(tags)
    if _if_none_match(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    response.headers.update(headers)
    return response


def cdn_cached(policy: CdnPolicy) -> Callable[[Handler], Handler]:
    """Decorate a GET handler whose answer is public and the same for every caller."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            return apply_cdn_headers(request, await handler(request), policy)

        return wrapper

    return decorate
