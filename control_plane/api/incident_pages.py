"""Incident pages for people: reached through the signed, expiring links put in notifications
(no token needed); acknowledge, resolve (confirmed) and note from a phone, under the name the
person gives (remembered in a cookie). The list is reached with a signed list link or, for an
admin, by signing in with an admin token once (a signed list cookie, never the token itself).

Every input goes through the validation seam: the id path, ``exp``/``sig``, the form fields
(a body that is not a well-formed form is a 400 as well)."""

from __future__ import annotations

import time
from typing import Annotated, Literal
from urllib.parse import quote, unquote, urlencode

from aiohttp import web
from pydantic import BeforeValidator

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
from control_plane.alerting.pages import (
    SECURITY_HEADERS,
    render_confirm_resolve,
    render_incident,
    render_list,
    render_login,
)
from control_plane.appkeys import POOL
from control_plane.auth.middleware import TOKEN_STORE
from control_plane.auth.principal import Scope
from haetae.web.problem import ProblemError
from haetae.web.validation import Model, Text, parse_id, path_id, query_dict, validate

# Cookies: the signed list link ("exp.sig") and the name people act under.
LIST_COOKIE = "haetae_incidents"
NAME_COOKIE = "haetae_name"
_MAX_FORM = 64 * 1024


def _exp(raw: object) -> int:
    """An expiry: ASCII digits only ("²" and a 5,000-digit number are 400s, not 500s)."""
    return parse_id(raw)


Sig = Annotated[str, Text(64, min_length=64, pattern=r"^[0-9a-f]{64}$")]
Expiry = Annotated[int, BeforeValidator(_exp)]
Actor = Annotated[str, Text(100, min_length=1)]
NoteText = Annotated[str, Text(10_000)]
AdminToken = Annotated[str, Text(200, min_length=1)]


class LinkQuery(Model):
    exp: Expiry
    sig: Sig


class ListQuery(Model):
    exp: Expiry | None = None
    sig: Sig | None = None


class ActionForm(Model):
    exp: Expiry
    sig: Sig
    action: Literal["ack", "resolve", "note"]
    actor: Actor
    text: NoteText = ""
    confirm: Literal["yes", ""] = ""


class LoginForm(Model):
    token: AdminToken


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/incidents", list_page)
    app.router.add_post("/incidents/login", login)
    app.router.add_get("/incidents/{id}", incident_page)
    app.router.add_post("/incidents/{id}/action", incident_action)


async def list_page(request: web.Request) -> web.Response:
    signer = _signer(request)
    now = time.time()
    q = validate(ListQuery, query_dict(request.query, ListQuery), where="query")
    exp, sig = q.exp, q.sig
    if exp is None:
        exp, sig = _list_cookie(request)
    if not signer.verify(LIST, exp, sig, now):
        # A page asking to sign in, not an error: every error here is problem+json.
        return _html(render_login())
    incidents = await list_incidents(request.app[POOL], status=None, limit=100, before=None)

    def link(incident_id: int) -> str:
        return f"/incidents/{incident_id}?{urlencode(signer.query(incident_id, now))}"

    return _html(render_list(incidents, link))


async def login(request: web.Request) -> web.Response:
    form = validate(LoginForm, await _form(request), where="body")
    principal = await request.app[TOKEN_STORE].verify(str(form.token).strip())
    if principal is None or not principal.has_scope(Scope.READ):
        return _html(render_login("That is not a valid admin token."))
    signer = _signer(request)
    query = signer.query(LIST, time.time())
    response = web.HTTPSeeOther("/incidents")
    _set_cookie(response, LIST_COOKIE, f"{query['exp']}.{query['sig']}", signer.ttl_s)
    _set_cookie(response, NAME_COOKIE, quote(principal.name[:100]), 365 * 86400)
    raise response


async def incident_page(request: web.Request) -> web.Response:
    incident_id = path_id(request)
    q = validate(LinkQuery, query_dict(request.query, LinkQuery), where="query")
    auth = _verified(request, incident_id, q.exp, q.sig)
    incident = await _incident(request, incident_id)
    return _html(render_incident(incident, auth, actor=_remembered_name(request)))


async def incident_action(request: web.Request) -> web.Response:
    incident_id = path_id(request)
    form = validate(ActionForm, await _form(request), where="body")
    auth = _verified(request, incident_id, form.exp, form.sig)
    actor = str(form.actor).strip()
    if not actor:
        raise _invalid("body.actor", "your name, so the timeline says who acted")
    notifier = request.app[NOTIFIER]
    pool = request.app[POOL]
    now = time.time()
    link = notifier.signer.url if notifier.signer is not None else None
    try:
        if form.action == "ack":
            await acknowledge(pool, incident_id, actor, now, notifier.policies, link=link)
            notifier.wake()
        elif form.action == "resolve":
            if form.confirm != "yes":
                incident = await _incident(request, incident_id)
                return _html(render_confirm_resolve(incident, auth, actor))
            await resolve(
                pool, incident_id, actor, now, notifier.policies, notifier.destinations, link=link
            )
            notifier.wake()
        else:
            note = str(form.text).strip()
            if not note:
                raise _invalid("body.text", "a note of 1-10000 characters")
            await add_note(pool, incident_id, actor, note, now)
    except IncidentError as exc:
        if exc.missing:
            raise _not_found(str(exc)) from exc
        # A second click (already acknowledged/resolved): show the page as it is now.
    response = web.HTTPSeeOther(f"/incidents/{incident_id}?{urlencode(auth)}")
    _set_cookie(response, NAME_COOKIE, quote(actor), 365 * 86400)
    raise response


async def _form(request: web.Request) -> dict[str, str]:
    """The urlencoded or multipart form as text fields; a malformed body is a 400."""
    if request.content_length is not None and request.content_length > _MAX_FORM:
        raise ProblemError(413, "Payload Too Large", detail="a form of at most 64 KiB")
    try:
        form = await request.post()
    except (ValueError, AssertionError, KeyError, UnicodeDecodeError) as exc:
        # aiohttp's multipart reader raises these for a bad boundary or a truncated part.
        raise _invalid("body", f"a well-formed form ({type(exc).__name__})") from None
    out: dict[str, str] = {}
    for key in set(form):
        values = form.getall(key)
        if len(values) != 1 or not isinstance(values[0], str):
            raise _invalid(f"body.{key[:64]}", "one text value")
        out[key] = values[0]
    return out


async def _incident(request: web.Request, incident_id: int) -> dict[str, object]:
    try:
        return await get_incident(request.app[POOL], incident_id)
    except IncidentError as exc:
        raise _not_found(str(exc)) from exc


def _list_cookie(request: web.Request) -> tuple[int | None, str | None]:
    raw = request.cookies.get(LIST_COOKIE, "")
    exp, _, sig = raw.partition(".")
    try:
        return _exp(exp), sig[:64]
    except ValueError:
        return None, None


def _remembered_name(request: web.Request) -> str:
    name = unquote(request.cookies.get(NAME_COOKIE, ""))[:100]
    return name.replace("\x00", "")


def _set_cookie(response: web.StreamResponse, name: str, value: str, max_age: float) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(max_age),
        path="/incidents",
        httponly=True,
        samesite="Strict",
    )


def _signer(request: web.Request) -> LinkSigner:
    signer = request.app[NOTIFIER].signer
    if signer is None:  # pragma: no cover - the app always builds one
        raise _forbidden()
    return signer


def _verified(request: web.Request, incident_id: int, exp: int, sig: str) -> dict[str, str]:
    if not _signer(request).verify(incident_id, exp, sig, time.time()):
        raise _forbidden()
    return {"exp": str(exp), "sig": sig}


def _invalid(field: str, detail: str) -> ProblemError:
    return ProblemError(400, "Invalid request", detail=detail, type_="invalid-field", field=field)


def _not_found(detail: str) -> ProblemError:
    return ProblemError(404, "Not Found", detail=detail, type_="not-found")


def _forbidden() -> ProblemError:
    return ProblemError(
        403,
        "Forbidden",
        detail="this link is not valid or has expired; use the link from a newer notification",
        type_="bad-link",
    )


def _html(body: str, *, status: int = 200) -> web.Response:
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )
