"""Local stand-ins for the notification providers ``haetae up`` sends to.

``haetae demo-peers`` speaks just enough of the Slack Web API (``chat.postMessage``,
``chat.update``) and of NHN Cloud's KakaoTalk AlimTalk send API for the real channels (slack-sdk,
the AlimTalk client) to deliver to it. Every notification is recorded with the time it arrived and
shown at ``GET /`` (HTML, newest first) and ``GET /api/notifications`` (JSON).
"""

from __future__ import annotations

import html
import itertools
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

MAX_KEPT = 1000


class Peers:
    def __init__(self) -> None:
        self.notifications: deque[dict[str, Any]] = deque(maxlen=MAX_KEPT)
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)

    def record(self, provider: str, method: str, to: str, text: str, body: Any) -> dict[str, Any]:
        now = time.time()
        item = {
            "id": next(self._ids),
            "provider": provider,
            "method": method,
            "to": to,
            "text": text,
            "received_at": now,
            "received_at_iso": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            "body": body,
        }
        self.notifications.append(item)
        return item

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"


PEERS: web.AppKey[Peers] = web.AppKey("peers", Peers)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        data = await request.json()
        return data if isinstance(data, dict) else {}
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def handle_slack(request: web.Request) -> web.Response:
    method = request.match_info["method"]
    body = await _body(request)
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return web.json_response({"ok": False, "error": "not_authed"})
    if method not in ("chat.postMessage", "chat.update"):
        return web.json_response({"ok": False, "error": "unknown_method"})
    channel = str(body.get("channel") or "")
    if not channel:
        return web.json_response({"ok": False, "error": "channel_not_found"})
    peers = request.app[PEERS]
    ts = str(body.get("ts") or peers.next_ts()) if method == "chat.update" else peers.next_ts()
    peers.record("slack", method, channel, str(body.get("text") or ""), body)
    return web.json_response({"ok": True, "channel": channel, "ts": ts})


def _alimtalk_header(code: int = 0, message: str = "success") -> dict[str, Any]:
    return {"resultCode": code, "resultMessage": message, "isSuccessful": code == 0}


async def handle_alimtalk(request: web.Request) -> web.Response:
    body = await _body(request)
    if not request.headers.get("X-Secret-Key"):
        return web.json_response({"header": _alimtalk_header(-1, "missing X-Secret-Key")})
    recipients = body.get("recipientList") or []
    if not isinstance(recipients, list) or not recipients:
        return web.json_response({"header": _alimtalk_header(-2, "recipientList is empty")})
    peers = request.app[PEERS]
    results = []
    for seq, recipient in enumerate(recipients, 1):
        params = recipient.get("templateParameter") or {}
        text = "\n".join(f"{k}: {v}" for k, v in params.items())
        peers.record("alimtalk", "messages", str(recipient.get("recipientNo", "")), text, body)
        results.append(
            {
                "recipientSeq": seq,
                "recipientNo": recipient.get("recipientNo"),
                "resultCode": 0,
                "resultMessage": "",
                "recipientGroupingKey": recipient.get("recipientGroupingKey"),
            }
        )
    request_id = f"{time.strftime('%Y%m%d%H%M%S')}{next(peers._ids):08d}"
    return web.json_response(
        {
            "header": _alimtalk_header(),
            "message": {"requestId": request_id, "senderGroupingKey": None, "sendResults": results},
        }
    )


async def handle_api(request: web.Request) -> web.Response:
    items = list(reversed(request.app[PEERS].notifications))
    return web.json_response({"notifications": items})


async def handle_index(request: web.Request) -> web.Response:
    rows = []
    for n in reversed(request.app[PEERS].notifications):
        label = "Slack" if n["provider"] == "slack" else "KakaoTalk AlimTalk"
        method, to = html.escape(n["method"]), html.escape(n["to"])
        at, text = html.escape(n["received_at_iso"]), html.escape(n["text"])
        rows.append(
            f"<li><b>{label}</b> {method} to {to} <small>at {at}</small><pre>{text}</pre></li>"
        )
    listing = "\n".join(rows) or "<li>No notifications yet.</li>"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Haetae local peers</title>
<style>body{{font-family:sans-serif;margin:1em}}pre{{white-space:pre-wrap;margin:.2em 0}}
li{{margin-bottom:.8em}}</style></head>
<body><h1>Notifications received by the local peers</h1>
<p>Slack and KakaoTalk AlimTalk messages from <code>haetae up</code>, newest first
(JSON: <a href="/api/notifications">/api/notifications</a>).</p>
<ul>
{listing}
</ul></body></html>"""
    return web.Response(text=page, content_type="text/html")


async def handle_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_peers_app() -> web.Application:
    app = web.Application()
    app[PEERS] = Peers()
    app.router.add_get("/", handle_index)
    app.router.add_get("/api/notifications", handle_api)
    app.router.add_get("/health", handle_health)
    app.router.add_post("/slack/api/{method}", handle_slack)
    app.router.add_post("/alimtalk/v2.3/appkeys/{app_key}/messages", handle_alimtalk)
    return app
