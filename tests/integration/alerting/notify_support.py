"""Local peers for the notification tests: a webhook receiver and a Slack Web API double
(chat.postMessage / chat.update), both real HTTP servers on loopback with scripted answers;
and a helper that records alert transitions the way the rule engine does."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Peer:
    """Records every request; answers from ``script`` (status, headers) first, then 200."""

    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.webhook)
        app.router.add_post("/api/{method}", self.slack)
        app.router.add_post("/v2/enqueue", self.pagerduty)
        return app

    def _scripted(self) -> tuple[int, dict[str, str]] | None:
        return self.script.pop(0) if self.script else None

    async def webhook(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path_qs, dict(request.headers), await request.json()))
        scripted = self._scripted()
        if scripted:
            return web.Response(status=scripted[0], headers=scripted[1], text="scripted")
        return web.Response(text="ok")

    async def pagerduty(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(Received("pagerduty", dict(request.headers), body))
        scripted = self._scripted()
        if scripted:
            return web.json_response({"status": "error"}, status=scripted[0], headers=scripted[1])
        return web.json_response({"status": "success", "dedup_key": body["dedup_key"]}, status=202)

    async def slack(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            body = await request.json()
        else:
            body = dict(await request.post())
        method = request.match_info["method"]
        self.received.append(Received(method, dict(request.headers), body))
        scripted = self._scripted()
        if scripted:
            status, headers = scripted
            return web.json_response(
                {"ok": False, "error": "ratelimited" if status == 429 else "internal_error"},
                status=status,
                headers=headers,
            )
        if request.headers.get("Authorization") != "Bearer xoxb-test":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        ts = body.get("ts") or f"1700000000.{next(self._ts):06d}"
        return web.json_response({"ok": True, "channel": "C42", "ts": ts})


async def record_transition(
    pool: asyncpg.Pool,
    at: float,
    labels: dict[str, str],
    previous: str,
    state: str,
    *,
    fingerprint: str | None = None,
    flapping: bool = False,
    annotations: dict[str, str] | None = None,
) -> None:
    await pool.execute(
        """INSERT INTO alert_events (at, rule_name, fingerprint, labels, previous, state,
                                     flapping, value, annotations)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 1.0, $8)""",
        dt.datetime.fromtimestamp(at, dt.UTC),
        labels.get("alertname", "Rule"),
        fingerprint or "fp-" + "-".join(f"{k}={v}" for k, v in sorted(labels.items())),
        labels,
        previous,
        state,
        flapping,
        annotations or {},
    )
