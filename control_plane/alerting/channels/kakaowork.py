"""A Kakao Work bot: ``POST {base}/v1/messages.send`` with the bot's app key as Bearer token,
the conversation, a push ``text`` and Block Kit-style ``blocks`` (header, text, button).

Kakao Work answers ``{"success": false, "error": {"code": ...}}`` for requests it refuses; a
refusal is permanent unless its HTTP status says otherwise (429, 5xx)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from control_plane.alerting.channels.base import (
    Delivery,
    PermanentSendError,
    RetryableSendError,
)
from control_plane.alerting.channels.http_status import post
from control_plane.alerting.payload import Notification, message_link, summary_line
from control_plane.config import KakaoWorkChannelConfig

# Kakao Work's limits: a header's text is short; a message holds at most 50 blocks.
_MAX_HEADER = 20
_MAX_ALERT_BLOCKS = 20
_MAX_TEXT = 500


def render_blocks(n: Notification) -> list[dict[str, Any]]:
    firing = n["status"] == "firing"
    incident = n.get("incident")
    head = "Incident" if incident is not None else ("Firing" if firing else "Resolved")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": head[:_MAX_HEADER], "style": "red" if firing else "blue"},
        {"type": "text", "text": summary_line(n)[:_MAX_TEXT], "markdown": True},
        {"type": "divider"},
    ]
    for alert in n["alerts"][:_MAX_ALERT_BLOCKS]:
        title = alert["annotations"].get("summary") or alert["labels"].get("alertname", "alert")
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
        state = alert["status"].upper() + (" (flapping)" if alert["flapping"] else "")
        blocks.append(
            {"type": "text", "text": f"**{state}** {title}\n{labels}"[:_MAX_TEXT], "markdown": True}
        )
    hidden = len(n["alerts"]) - _MAX_ALERT_BLOCKS
    if hidden > 0:
        blocks.append({"type": "text", "text": f"and {hidden} more", "markdown": False})
    url = message_link(n)
    if url:
        blocks.append(
            {
                "type": "button",
                "text": "Open the incident",
                "style": "default",
                "action_type": "open_system_browser",
                "value": url,
            }
        )
    return blocks


class KakaoWorkChannel:
    kind = "kakaowork"

    def __init__(self, cfg: KakaoWorkChannelConfig, *, min_interval_s: float = 0.0) -> None:
        self._cfg = cfg
        self.min_interval_s = min_interval_s
        self._session: aiohttp.ClientSession | None = None

    async def send(
        self,
        notification: Notification,
        *,
        idempotency_key: str,
        previous: Mapping[str, Any] | None = None,
    ) -> Delivery:
        cfg = self._cfg
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)
            )
        message = {
            "conversation_id": cfg.conversation_id,
            "text": summary_line(notification)[:_MAX_TEXT],
            "blocks": render_blocks(notification),
        }
        headers = {
            "Authorization": f"Bearer {cfg.app_key.get_secret_value()}",
            "Content-Type": "application/json",
        }
        url = f"{cfg.base_url.rstrip('/')}/v1/messages.send"
        status, body = await post(
            self._session, url, data=orjson.dumps(message), headers=headers, max_body=16384
        )
        return _receipt(status, body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _receipt(status: int, body: bytes) -> Delivery:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RetryableSendError(f"Kakao Work: unreadable answer {body[:100]!r}") from exc
    if not isinstance(data, dict) or not data.get("success"):
        error = data.get("error") if isinstance(data, dict) else None
        code = error.get("code", "unknown") if isinstance(error, dict) else "unknown"
        raise PermanentSendError(f"Kakao Work: {code}", status=status)
    message = data.get("message") or {}
    return Delivery(status, {"message_id": message.get("id")})
