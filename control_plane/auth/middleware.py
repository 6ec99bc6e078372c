"""Authentication at the edge: every ``/admin/*`` route needs an admin token with a scope.

GET/HEAD need ``read``, other methods ``write``, unless the handler is decorated with
:func:`requires_scope`. Other routes (agent API) resolve the principal and check it themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from control_plane.auth.principal import Principal, Scope, TokenKind
from control_plane.auth.store import TokenStore
from haetae.web.problem import ProblemError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])

TOKEN_STORE: web.AppKey[TokenStore] = web.AppKey("token_store", TokenStore)
# A typed request key: plain string keys warn on aiohttp >= 3.14 (warnings are errors in tests).
_PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("haetae.principal")
_SCOPE_ATTR = "__haetae_required_scope__"


def requires_scope(scope: Scope) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        setattr(handler, _SCOPE_ATTR, scope)
        return handler

    return mark


def unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "Unauthorized",
        detail=detail,
        type_="unauthorized",
        field="header.Authorization",
        headers={"WWW-Authenticate": 'Bearer realm="haetae"'},
    )


def forbidden(detail: str) -> ProblemError:
    return ProblemError(403, "Forbidden", detail=detail, type_="forbidden")


async def resolve_principal(request: web.Request) -> Principal | None:
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("use 'Authorization: Bearer <token>'")
    principal = await request.app[TOKEN_STORE].verify(token.strip())
    if principal is None:
        raise unauthorized("the token is unknown, revoked or expired")
    return principal


def current_principal(request: web.Request) -> Principal | None:
    p = request.get(_PRINCIPAL)
    return p if isinstance(p, Principal) else None


def require_principal(request: web.Request, kind: TokenKind) -> Principal:
    p = current_principal(request)
    if p is None:
        raise unauthorized("a bearer token is required")
    if p.kind is not kind:
        raise forbidden(f"this route needs a {kind.value} token, not a {p.kind.value} token")
    return p


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[_PRINCIPAL] = await resolve_principal(request)
    if request.path.startswith("/admin/") or request.path == "/admin":
        principal = require_principal(request, TokenKind.ADMIN)
        needed = getattr(request.match_info.handler, _SCOPE_ATTR, None)
        if needed is None:
            needed = Scope.READ if request.method in ("GET", "HEAD", "OPTIONS") else Scope.WRITE
        if not principal.has_scope(needed):
            raise forbidden(f"this route needs the {needed.value!r} scope")
    return await handler(request)
