"""Admin API for silences (``/admin/alerts/silences``) and the notification groups' dry run
(``GET /admin/alerts/groups``: what each group holds and when it will next flush)."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from aiohttp import web

from control_plane.alerting.silences import create_silence, expire_silence, list_silences
from control_plane.appkeys import POOL
from control_plane.auth.middleware import current_principal
from control_plane.query.params import parse_duration, parse_time, reject_unknown
from haetae.web.bodies import json_response, read_json
from haetae.web.problem import ProblemError, invalid

_KEYS = frozenset({"matchers", "starts_at", "ends_at", "duration", "comment"})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/admin/alerts/silences", post_silence)
    app.router.add_get("/admin/alerts/silences", get_silences)
    app.router.add_delete("/admin/alerts/silences/{id}", delete_silence)
    app.router.add_get("/admin/alerts/groups", get_groups)


async def post_silence(request: web.Request) -> web.Response:
    body = await read_json(request, max_bytes=64 * 1024)
    if not isinstance(body, dict):
        raise invalid("body", "a silence is an object")
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise invalid(unknown[0], "unknown key")
    matchers = body.get("matchers")
    if (
        not isinstance(matchers, list)
        or not matchers
        or not all(isinstance(m, str) for m in matchers)
    ):
        raise invalid("matchers", "a non-empty list of label matchers like 'alertname=\"X\"'")
    now = time.time()
    starts = _time(body, "starts_at", now)
    if "ends_at" in body and "duration" in body:
        raise invalid("duration", "give ends_at or duration, not both")
    if "duration" in body:
        if not isinstance(body["duration"], str):
            raise invalid("duration", "a duration like 2h")
        ends = starts + parse_duration(body["duration"], "duration")
    elif "ends_at" in body:
        ends = _time(body, "ends_at", now)
    else:
        raise invalid("ends_at", "ends_at or duration is required")
    if ends <= starts or ends <= now:
        raise invalid("ends_at", "a silence must end after it starts and in the future")
    comment = body.get("comment", "")
    if not isinstance(comment, str):
        raise invalid("comment", "a string")
    principal = current_principal(request)
    who = principal.name if principal is not None else "unknown"
    silence = await create_silence(
        request.app[POOL], matchers, starts, ends, created_by=who, comment=comment, now=now
    )
    return json_response(silence, status=201)


async def get_silences(request: web.Request) -> web.Response:
    reject_unknown(request.query, ("expired",))
    expired = request.query.get("expired", "false")
    if expired not in ("true", "false"):
        raise invalid("query.expired", "true or false")
    silences = await list_silences(request.app[POOL], time.time(), expired=expired == "true")
    return json_response({"silences": silences})


async def delete_silence(request: web.Request) -> web.Response:
    try:
        silence_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise invalid("id", "not a silence id") from None
    if not await expire_silence(request.app[POOL], silence_id, time.time()):
        raise ProblemError(404, "Not Found", detail="no such silence", type_="not-found")
    return web.Response(status=204)


async def get_groups(request: web.Request) -> web.Response:
    reject_unknown(request.query, ())
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


def _time(body: dict[str, Any], key: str, default: float) -> float:
    raw = body.get(key)
    if raw is None:
        return default
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        return float(raw)
    if isinstance(raw, str):
        return parse_time(raw, key)
    raise invalid(key, "unix seconds or an RFC 3339 time")
