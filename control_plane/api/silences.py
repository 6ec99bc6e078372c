"""Admin API for silences (``/admin/alerts/silences``) and the notification groups' dry run
(``GET /admin/alerts/groups``: what each group holds and when it will next flush)."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from control_plane.alerting.silences import (
    MAX_COMMENT,
    MAX_SILENCE_MATCHERS,
    create_silence,
    expire_silence,
    list_silences,
)
from control_plane.appkeys import POOL
from control_plane.auth.middleware import current_principal
from control_plane.query.matchers import MAX_MATCHER, parse_matcher
from haetae.web import validation
from haetae.web.bodies import json_response
from haetae.web.problem import ProblemError, invalid

MatcherText = Annotated[str, validation.Text(MAX_MATCHER, min_length=1)]
Comment = Annotated[str, validation.Text(MAX_COMMENT)]


class NewSilence(validation.Model):
    matchers: Annotated[list[MatcherText], Field(min_length=1, max_length=MAX_SILENCE_MATCHERS)]
    starts_at: validation.UnixTime | None = None
    ends_at: validation.UnixTime | None = None
    duration: validation.Duration | None = None
    comment: Comment = ""


class ListParams(validation.Model):
    expired: Literal["true", "false"] = "false"


class NoParams(validation.Model):
    pass


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/admin/alerts/silences", post_silence)
    app.router.add_get("/admin/alerts/silences", get_silences)
    app.router.add_delete("/admin/alerts/silences/{id}", delete_silence)
    app.router.add_get("/admin/alerts/groups", get_groups)


async def post_silence(request: web.Request) -> web.Response:
    body = await validation.body(request, NewSilence, max_bytes=64 * 1024)
    for i, text in enumerate(body.matchers):
        parse_matcher(text, where=f"body.matchers[{i}]")
    now = time.time()
    starts = now if body.starts_at is None else body.starts_at
    if body.ends_at is not None and body.duration is not None:
        raise invalid("body.duration", "give ends_at or duration, not both")
    if body.duration is not None:
        ends = starts + body.duration
        if ends > validation.MAX_UNIX_S:
            raise invalid("body.duration", "the silence would end after the year 9999")
    elif body.ends_at is not None:
        ends = body.ends_at
    else:
        raise invalid("body.ends_at", "ends_at or duration is required")
    if ends <= starts or ends <= now:
        raise invalid("body.ends_at", "a silence must end after it starts and in the future")
    principal = current_principal(request)
    who = principal.name if principal is not None else "unknown"
    silence = await create_silence(
        request.app[POOL],
        list(body.matchers),
        starts,
        ends,
        created_by=who,
        comment=body.comment,
        now=now,
    )
    return json_response(silence, status=201)


async def get_silences(request: web.Request) -> web.Response:
    params = validation.query(request, ListParams)
    silences = await list_silences(request.app[POOL], time.time(), expired=params.expired == "true")
    return json_response({"silences": silences})


async def delete_silence(request: web.Request) -> web.Response:
    raw = validation.path_text(request, "id", 64)
    try:
        silence_id = uuid.UUID(raw)
    except ValueError:
        raise invalid("path.id", "not a silence id") from None
    if not await expire_silence(request.app[POOL], silence_id, time.time()):
        raise ProblemError(404, "Not Found", detail="no such silence", type_="not-found")
    return web.Response(status=204)


async def get_groups(request: web.Request) -> web.Response:
    validation.query(request, NoParams)
    rows = await request.app[POOL].fetch(
        """SELECT g.*, count(a.fingerprint) FILTER (WHERE a.state = 'firing') AS firing,
                  count(a.fingerprint) FILTER (WHERE a.state = 'resolved') AS resolved
           FROM notify_groups g LEFT JOIN notify_group_alerts a USING (group_key)
           GROUP BY g.group_key ORDER BY g.next_flush_at"""
    )
    groups: list[dict[str, Any]] = [
        {
            "group_key": r["group_key"],
            "receiver": r["receiver"],
            "group_labels": r["group_labels"],
            "firing": r["firing"],
            "resolved": r["resolved"],
            "next_flush_at": r["next_flush_at"].isoformat().replace("+00:00", "Z"),
            "last_sent_at": (
                None
                if r["last_sent_at"] is None
                else r["last_sent_at"].isoformat().replace("+00:00", "Z")
            ),
        }
        for r in rows
    ]
    return json_response({"groups": groups})
