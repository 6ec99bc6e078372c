"""Incident pages for people: reached through the signed, expiring links put in notifications
(no token needed); acknowledge, resolve and note from a phone."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from aiohttp import web

from control_plane.alerting.context import NOTIFIER
from control_plane.alerting.incidents import (
    IncidentError,
    acknowledge,
    add_note,
    get_incident,
    list_incidents,
    resolve,
)
from control_plane.alerting.links import LIST, LinkSigner
from control_plane.alerting.pages import render_incident, render_list
from control_plane.appkeys import POOL
from haetae.web.problem import ProblemError

_ACTOR = "incident page"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/incidents", list_page)
    app.router.add_get("/incidents/{id:\\d{1,18}}", incident_page)
    app.router.add_post("/incidents/{id:\\d{1,18}}/action", incident_action)


async def list_page(request: web.Request) -> web.Response:
    signer = _signer(request)
    now = time.time()
    if not signer.verify(LIST, request.query.get("exp"), request.query.get("sig"), now):
        raise _forbidden()
    incidents = await list_incidents(request.app[POOL], status=None, limit=100, before=None)

    def link(incident_id: int) -> str:
        return f"/incidents/{incident_id}?{urlencode(signer.query(incident_id, now))}"

    return _html(render_list(incidents, link))


async def incident_page(request: web.Request) -> web.Response:
    incident_id = int(request.match_info["id"])
    auth = _verified(request, incident_id, request.query.get("exp"), request.query.get("sig"))
    try:
        incident = await get_incident(request.app[POOL], incident_id)
    except IncidentError as exc:
        raise ProblemError(404, "Not Found", detail=str(exc), type_="not-found") from exc
    return _html(render_incident(incident, auth))


async def incident_action(request: web.Request) -> web.Response:
    incident_id = int(request.match_info["id"])
    form = await request.post()
    exp, sig = form.get("exp"), form.get("sig")
    auth = _verified(
        request,
        incident_id,
        exp if isinstance(exp, str) else None,
        sig if isinstance(sig, str) else None,
    )
    notifier = request.app[NOTIFIER]
    pool = request.app[POOL]
    now = time.time()
    action = form.get("action")
    try:
        if action == "ack":
            await acknowledge(pool, incident_id, _ACTOR, now, notifier.policies)
        elif action == "resolve":
            link = notifier.signer.url if notifier.signer is not None else None
            await resolve(
                pool, incident_id, _ACTOR, now, notifier.policies, notifier.destinations, link=link
            )
            notifier.wake()
        elif action == "note":
            text = form.get("text")
            if not isinstance(text, str) or not text.strip() or len(text) > 10_000:
                raise ProblemError(
                    400,
                    "Invalid request",
                    detail="a note of 1-10000 characters",
                    type_="invalid-field",
                    field="text",
                )
            await add_note(pool, incident_id, _ACTOR, text.strip(), now)
        else:
            raise ProblemError(
                400,
                "Invalid request",
                detail="action is ack, resolve or note",
                type_="invalid-field",
                field="action",
            )
    except IncidentError as exc:
        if exc.missing:
            raise ProblemError(404, "Not Found", detail=str(exc), type_="not-found") from exc
        # A second click (already acknowledged/resolved): show the page as it is now.
    raise web.HTTPSeeOther(f"/incidents/{incident_id}?{urlencode(auth)}")


def _signer(request: web.Request) -> LinkSigner:
    signer = request.app[NOTIFIER].signer
    if signer is None:  # pragma: no cover - the app always builds one
        raise _forbidden()
    return signer


def _verified(
    request: web.Request, incident_id: int, exp: str | None, sig: str | None
) -> dict[str, str]:
    if not _signer(request).verify(incident_id, exp, sig, time.time()):
        raise _forbidden()
    assert exp is not None and sig is not None
    return {"exp": exp, "sig": sig}


def _forbidden() -> ProblemError:
    return ProblemError(
        403,
        "Forbidden",
        detail="this link is not valid or has expired; use the link from a newer notification",
        type_="bad-link",
    )


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8")
