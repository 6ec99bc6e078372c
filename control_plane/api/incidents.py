"""Admin API for incidents: create, list, detail with timeline, acknowledge, resolve, note,
reassign. Escalation itself runs in the notifier (durable timers in PostgreSQL)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from control_plane.alerting.context import NOTIFIER
from control_plane.alerting.incidents import (
    IncidentError,
    acknowledge,
    add_note,
    get_incident,
    list_incidents,
    open_incident,
    reassign,
    resolve,
)
from control_plane.appkeys import POOL
from control_plane.auth.middleware import current_principal
from control_plane.query.cursor import decode_cursor, encode_cursor
from control_plane.query.params import parse_page, reject_unknown
from haetae.web.bodies import json_response, read_json
from haetae.web.problem import ProblemError, invalid

_STATUSES = ("triggered", "acknowledged", "resolved")


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/admin/incidents/create", post_create)
    app.router.add_get("/admin/incidents", get_list)
    app.router.add_get("/admin/incidents/{id}", get_one)
    app.router.add_post("/admin/incidents/{id}/ack", post_ack)
    app.router.add_post("/admin/incidents/{id}/resolve", post_resolve)
    app.router.add_post("/admin/incidents/{id}/note", post_note)
    app.router.add_post("/admin/incidents/{id}/reassign", post_reassign)


async def post_create(request: web.Request) -> web.Response:
    body = await _object(request, {"title", "policy"})
    title = body.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > 300:
        raise invalid("title", "a title of 1-300 characters")
    policy = body.get("policy")
    if policy not in request.app[NOTIFIER].policies:
        known = ", ".join(sorted(request.app[NOTIFIER].policies)) or "none configured"
        raise invalid("policy", f"an escalation policy name ({known})")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        incident_id = await open_incident(
            conn, title.strip(), policy, time.time(), actor=_who(request)
        )
    assert incident_id is not None  # no group: never a conflict
    request.app[NOTIFIER].wake()
    return json_response(await get_incident(request.app[POOL], incident_id), status=201)


async def get_list(request: web.Request) -> web.Response:
    q = request.query
    reject_unknown(q, ("status", "limit", "cursor"))
    status = q.get("status")
    if status is not None and status not in _STATUSES:
        raise invalid("query.status", f"one of {', '.join(_STATUSES)}")
    page = parse_page(q)
    before = None if page.after is None else decode_cursor(page.after, kind=int)
    rows = await list_incidents(
        request.app[POOL], status=status, limit=page.limit + 1, before=before
    )
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    cursor = encode_cursor(rows[-1]["id"]) if more and rows else None
    return json_response({"incidents": rows, "next_cursor": cursor})


async def get_one(request: web.Request) -> web.Response:
    incident = await _call(get_incident(request.app[POOL], _id(request)))
    signer = request.app[NOTIFIER].signer
    if signer is not None:
        incident["page_url"] = signer.url(incident["id"], time.time())
    return json_response(incident)


async def post_ack(request: web.Request) -> web.Response:
    policies = request.app[NOTIFIER].policies
    pool = request.app[POOL]
    await _call(acknowledge(pool, _id(request), _who(request), time.time(), policies))
    return json_response(await get_incident(pool, _id(request)))


async def post_resolve(request: web.Request) -> web.Response:
    notifier = request.app[NOTIFIER]
    pool = request.app[POOL]
    await _call(
        resolve(
            pool,
            _id(request),
            _who(request),
            time.time(),
            notifier.policies,
            notifier.destinations,
            link=notifier.signer.url if notifier.signer is not None else None,
        )
    )
    notifier.wake()
    return json_response(await get_incident(pool, _id(request)))


async def post_note(request: web.Request) -> web.Response:
    body = await _object(request, {"text"})
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > 10_000:
        raise invalid("text", "a note of 1-10000 characters")
    pool = request.app[POOL]
    await _call(add_note(pool, _id(request), _who(request), text, time.time()))
    return json_response(await get_incident(pool, _id(request)), status=201)


async def post_reassign(request: web.Request) -> web.Response:
    body = await _object(request, {"assignee"})
    assignee = body.get("assignee")
    if not isinstance(assignee, str) or not assignee.strip() or len(assignee) > 200:
        raise invalid("assignee", "who takes the incident over (1-200 characters)")
    pool = request.app[POOL]
    await _call(reassign(pool, _id(request), _who(request), assignee.strip(), time.time()))
    return json_response(await get_incident(pool, _id(request)))


async def _call(awaitable: Any) -> Any:
    try:
        return await awaitable
    except IncidentError as exc:
        if exc.missing:
            raise ProblemError(404, "Not Found", detail=str(exc), type_="not-found") from exc
        raise ProblemError(
            409, "Conflict", detail=str(exc), type_="incident-state", field="status"
        ) from exc


async def _object(request: web.Request, keys: set[str]) -> dict[str, Any]:
    body = await read_json(request, max_bytes=64 * 1024)
    if not isinstance(body, dict):
        raise invalid("body", "a JSON object")
    unknown = sorted(set(body) - keys)
    if unknown:
        raise invalid(unknown[0], "unknown key")
    return body


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ProblemError(404, "Not Found", detail="no such incident", type_="not-found")
    return int(raw)


def _who(request: web.Request) -> str:
    principal = current_principal(request)
    return principal.name if principal is not None else "unknown"
