"""Admin monitoring API: stored metrics by name and label matchers, and the agents' states.

Both are ``/admin/*`` routes: the auth middleware requires an admin token with ``read``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from control_plane.appkeys import CONFIG, POOL
from control_plane.query.agents import list_agents
from control_plane.query.cursor import decode_cursor
from control_plane.query.metrics import SeriesPoints, fetch_metrics
from control_plane.query.params import PageParams, parse_metrics_query
from haetae.web import validation
from haetae.web.bodies import json_response


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/admin/monitoring/metrics", get_metrics)
    app.router.add_get("/admin/agents", get_agents)


async def get_metrics(request: web.Request) -> web.Response:
    query = parse_metrics_query(request.query, now=time.time())
    page = await fetch_metrics(request.app[POOL], query)
    return json_response(
        {"series": [_series_json(s) for s in page.series], "next_cursor": page.next_cursor}
    )


async def get_agents(request: web.Request) -> web.Response:
    page_q = validation.query(request, PageParams)
    after = None if page_q.cursor is None else decode_cursor(page_q.cursor, kind=str)
    page = await list_agents(
        request.app[POOL],
        now=time.time(),
        cfg=request.app[CONFIG].agents,
        limit=page_q.limit,
        after=after,
    )
    return json_response({"agents": page.agents, "next_cursor": page.next_cursor})


def _series_json(s: SeriesPoints) -> dict[str, Any]:
    return {
        "name": s.name,
        "labels": s.labels,
        "agent": s.agent,
        "points": [[t, _value_json(v)] for t, v in s.points],
    }


def _value_json(v: float) -> float | str:
    # JSON has no NaN or infinities: spelled as strings, as in the wire format.
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")
