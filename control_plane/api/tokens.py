"""Admin API for tokens: create admin or enrolment tokens, list, revoke (``admin`` scope)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from control_plane.auth import Scope, TokenKind, requires_scope
from control_plane.auth.middleware import TOKEN_STORE
from haetae.web.bodies import json_response, read_json
from haetae.web.problem import ProblemError, invalid

_CREATABLE = {TokenKind.ADMIN.value, TokenKind.ENROLMENT.value}


def _parse_create(body: Any) -> tuple[TokenKind, str, list[Scope], dt.datetime | None]:
    if not isinstance(body, dict):
        raise invalid("body", "expected a JSON object")
    unknown = set(body) - {"kind", "name", "scopes", "expires_in_s"}
    if unknown:
        raise invalid(sorted(unknown)[0], "unknown field")
    kind = body.get("kind")
    if kind not in _CREATABLE:
        raise invalid("kind", "must be 'admin' or 'enrolment' (agent tokens come from enrolment)")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise invalid("name", "a string of 1 to 200 characters is required")
    raw_scopes = body.get("scopes", [])
    if not isinstance(raw_scopes, list):
        raise invalid("scopes", "expected a list of 'read', 'write', 'admin'")
    scopes = []
    for i, s in enumerate(raw_scopes):
        try:
            scopes.append(Scope(s))
        except ValueError:
            raise invalid(f"scopes[{i}]", "must be one of 'read', 'write', 'admin'") from None
    if kind == TokenKind.ADMIN.value and not scopes:
        raise invalid("scopes", "an admin token needs at least one scope")
    if kind == TokenKind.ENROLMENT.value and scopes:
        raise invalid("scopes", "enrolment tokens carry no scopes")
    expires_at = None
    if "expires_in_s" in body:
        ttl = body["expires_in_s"]
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
            raise invalid("expires_in_s", "a positive number of seconds is required")
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=float(ttl))
    return TokenKind(kind), name, scopes, expires_at


@requires_scope(Scope.ADMIN)
async def create_token(request: web.Request) -> web.Response:
    kind, name, scopes, expires_at = _parse_create(await read_json(request))
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
    token_id = request.match_info["token_id"]
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
