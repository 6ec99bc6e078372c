"""Admin API for tokens: create admin or enrolment tokens, list, revoke (``admin`` scope)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field

from control_plane.auth import Scope, TokenKind, requires_scope
from control_plane.auth.middleware import TOKEN_STORE
from haetae.web import validation
from haetae.web.bodies import json_response
from haetae.web.problem import ProblemError, invalid

Name = validation.Name

# Agent tokens come from enrolment, never from this route.
CreatableKind = Literal["admin", "enrolment"]
Lifetime = Annotated[
    float, Field(gt=0, le=validation.MAX_DURATION_S, strict=True, allow_inf_nan=False)
]


class NewTokenRequest(validation.Model):
    kind: CreatableKind
    name: Name
    scopes: Annotated[list[Scope], Field(max_length=len(Scope))] = []
    expires_in_s: Lifetime | None = None


def _checked(req: NewTokenRequest) -> tuple[TokenKind, list[Scope], dt.datetime | None]:
    kind = TokenKind(req.kind)
    if kind is TokenKind.ADMIN and not req.scopes:
        raise invalid("body.scopes", "an admin token needs at least one scope")
    if kind is TokenKind.ENROLMENT and req.scopes:
        raise invalid("body.scopes", "enrolment tokens carry no scopes")
    expires_at = None
    if req.expires_in_s is not None:
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=req.expires_in_s)
    return kind, list(req.scopes), expires_at


@requires_scope(Scope.ADMIN)
async def create_token(request: web.Request) -> web.Response:
    req = await validation.body(request, NewTokenRequest, max_bytes=64 * 1024)
    kind, scopes, expires_at = _checked(req)
    name = req.name
    plaintext, principal = await request.app[TOKEN_STORE].create(
        kind, name, scopes=scopes, expires_at=expires_at
    )
    return json_response(
        {
            "token_id": principal.token_id,
            "token": plaintext,
            "kind": kind.value,
            "name": name,
            "scopes": sorted(s.value for s in principal.scopes),
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        status=201,
    )


@requires_scope(Scope.ADMIN)
async def list_tokens(request: web.Request) -> web.Response:
    rows = await request.app[TOKEN_STORE].list()
    for row in rows:
        for key in ("created_at", "expires_at", "revoked_at"):
            value = row[key]
            if isinstance(value, dt.datetime):
                row[key] = value.isoformat()
    return json_response({"tokens": rows})


@requires_scope(Scope.ADMIN)
async def revoke_token(request: web.Request) -> web.Response:
    token_id = validation.path_text(request, "token_id", 64)
    if not await request.app[TOKEN_STORE].revoke(token_id):
        raise ProblemError(
            404,
            "Not Found",
            detail=f"no active token {token_id!r}",
            type_="not-found",
            field="path.token_id",
        )
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/admin/tokens", create_token)
    app.router.add_get("/admin/tokens", list_tokens)
    app.router.add_delete("/admin/tokens/{token_id}", revoke_token)
