"""Admin API for incidents: create, list, detail with alerts and timeline, acknowledge,
resolve, note, reassign. Escalation itself runs in the notifier (durable timers in PostgreSQL).
Bodies, ids and queries go through the validation seam (400s naming the field)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

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
from haetae.web.bodies import json_response
from haetae.web.problem import ProblemError, invalid
from haetae.web.validation import Model, Name, Text, body, path_id, query

Title = Annotated[str, Text(300, min_length=1)]
NoteText = Annotated[str, Text(10_000, min_length=1)]
Assignee = Annotated[str, Text(200, min_length=1)]
Cursor = Annotated[str, Text(2048)]


class CreateBody(Model):
    title: Title
    policy: Name


class NoteBody(Model):
    text: NoteText


class ReassignBody(Model):
    assignee: Assignee


class ListQuery(Model):
    status: Literal["triggered", "acknowledged", "resolved"] | None = None
    limit: str | None = None  # read by parse_page (bounds, cursor)
    cursor: Cursor | None = None


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/admin/incidents/create", post_create)
    app.router.add_get("/admin/incidents", get_list)
    app.router.add_get("/admin/incidents/{id}", get_one)
    app.router.add_post("/admin/incidents/{id}/ack", post_ack)
    app.router.add_post("/admin/incidents/{id}/resolve", post_resolve)
    app.router.add_post("/admin/incidents/{id}/note", post_note)
    app.router.add_post("/admin/incidents/{id}/reassign", post_reassign)


async def post_create(request: web.Request) -> web.Response:
    req = await body(request, CreateBody, max_bytes=64 * 1024)
    title, policy = str(req.title), str(req.policy)
    if not title.strip():
        raise invalid("body.title", "a title of 1-300 characters")
    if policy not in request.app[NOTIFIER].policies:
        known = ", ".join(sorted(request.app[NOTIFIER].policies)) or "none configured"
        raise invalid("body.policy", f"an escalation policy name ({known})")
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
    status = query(request, ListQuery).status
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
    notifier = request.app[NOTIFIER]
    pool = request.app[POOL]
    link = notifier.signer.url if notifier.signer is not None else None
    await _call(
        acknowledge(pool, _id(request), _who(request), time.time(), notifier.policies, link=link)
    )
    notifier.wake()
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
    note = str((await body(request, NoteBody, max_bytes=64 * 1024)).text)
    if not note.strip():
        raise invalid("body.text", "a note of 1-10000 characters")
    pool = request.app[POOL]
    await _call(add_note(pool, _id(request), _who(request), note, time.time()))
    return json_response(await get_incident(pool, _id(request)), status=201)


async def post_reassign(request: web.Request) -> web.Response:
    assignee = str((await body(request, ReassignBody, max_bytes=64 * 1024)).assignee)
    if not assignee.strip():
        raise invalid("body.assignee", "who takes the incident over (1-200 characters)")
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


def _id(request: web.Request) -> int:
    return path_id(request)


def _who(request: web.Request) -> str:
    principal = current_principal(request)
    return principal.name if principal is not None else "unknown"
