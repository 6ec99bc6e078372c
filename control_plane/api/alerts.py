"""Admin API for alerts: the active ones (``GET /admin/monitoring/alerts``) and the history of
their transitions (``GET /admin/alerts/history``, filters and keyset pagination)."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiMapping

from control_plane.appkeys import POOL
from control_plane.query.cursor import decode_cursor
from control_plane.query.params import parse_page, parse_time, reject_unknown
from control_plane.rules.history import HistoryQuery, active_alerts, alert_history
from control_plane.rules.state import AlertState
from haetae.web.bodies import json_response
from haetae.web.problem import invalid


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/admin/monitoring/alerts", get_active)
    app.router.add_get("/admin/alerts/history", get_history)


async def get_active(request: web.Request) -> web.Response:
    q = request.query
    reject_unknown(q, ("rule", "state"))
    state = _state(q, ("pending", "firing"))
    alerts = await active_alerts(request.app[POOL], rule=q.get("rule"), state=state)
    return json_response({"alerts": alerts})


async def get_history(request: web.Request) -> web.Response:
    q = request.query
    reject_unknown(q, ("rule", "fingerprint", "state", "since", "until", "limit", "cursor"))
    page = parse_page(q)
    before = None if page.after is None else decode_cursor(page.after, kind=int)
    since = parse_time(q["since"], "query.since") if "since" in q else None
    until = parse_time(q["until"], "query.until") if "until" in q else None
    if since is not None and until is not None and since >= until:
        raise invalid("query.since", "since must be before until")
    query = HistoryQuery(
        limit=page.limit,
        before_id=before,
        rule=q.get("rule"),
        fingerprint=q.get("fingerprint"),
        state=_state(q, tuple(s.value for s in AlertState)),
        since=since,
        until=until,
    )
    result = await alert_history(request.app[POOL], query)
    return json_response({"events": result.events, "next_cursor": result.next_cursor})


def _state(q: MultiMapping[str], allowed: tuple[str, ...]) -> AlertState | None:
    raw = q.get("state")
    if raw is None:
        return None
    if raw not in allowed:
        raise invalid("query.state", f"state must be one of {', '.join(allowed)}")
    return AlertState(raw)
