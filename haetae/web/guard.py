"""A guard in front of every handler (and of auth) for input no route can want.

A NUL (``%00``) in the path or the query string is never valid for Haetae, and PostgreSQL refuses
it in any text column: refusing it here, once, means no route has to remember to. Bodies are typed
per route by :mod:`haetae.web.validation`, which refuses NUL in every string it models.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from haetae.web.problem import invalid

_NUL = "\x00"


@web.middleware
async def input_guard_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    field = refused_field(request)
    if field is not None:
        raise invalid(field, "must not contain a NUL character")
    return await handler(request)


def refused_field(request: web.BaseRequest) -> str | None:
    """The first part of the URL no handler may see (``path``, ``query.<key>``), or None."""
    if _NUL in request.path:
        return "path"
    for key, value in request.query.items():
        if _NUL in key or _NUL in value:
            return "query." + key.replace(_NUL, "\\0")[:64]
    return None
