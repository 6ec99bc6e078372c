"""Admin API for alerts: the active ones (``GET /admin/monitoring/alerts``) and the history of
their transitions (``GET /admin/alerts/history``, filters and keyset pagination)."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web

from control_plane.appkeys import POOL
from control_plane.query.cursor import decode_cursor
from control_plane.query.params import PageParams
from control_plane.rules.history import HistoryQuery, active_alerts, alert_history
from control_plane.rules.state import AlertState
from haetae.web import validation
from haetae.web.bodies import json_response
from haetae.web.problem import invalid

# Rule names are at most 128 characters (rules.model.RULE_NAME); fingerprints are hex.
RuleName = Annotated[str, validation.Text(128)]
Fingerprint = Annotated[str, validation.Text(64)]


class ActiveParams(validation.Model):
    rule: RuleName | None = None
    state: Literal["pending", "firing"] | None = None


class HistoryParams(PageParams):
    rule: RuleName | None = None
    fingerprint: Fingerprint | None = None
    state: AlertState | None = None
    since: validation.UnixTime | None = None
    until: validation.UnixTime | None = None


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/admin/monitoring/alerts", get_active)
    app.router.add_get("/admin/alerts/history", get_history)


async def get_active(request: web.Request) -> web.Response:
    q = validation.query(request, ActiveParams)
    state = None if q.state is None else AlertState(q.state)
    alerts = await active_alerts(request.app[POOL], rule=q.rule, state=state)
    return json_response({"alerts": alerts})


async def get_history(request: web.Request) -> web.Response:
    q = validation.query(request, HistoryParams)
    before = None if q.cursor is None else decode_cursor(q.cursor, kind=int)
    if q.since is not None and q.until is not None and q.since >= q.until:
        raise invalid("query.since", "since must be before until")
    query = HistoryQuery(
        limit=q.limit,
        before_id=before,
        rule=q.rule,
        fingerprint=q.fingerprint,
        state=q.state,
        since=q.since,
        until=q.until,
    )
    result = await alert_history(request.app[POOL], query)
    return json_response({"events": result.events, "next_cursor": result.next_cursor})
