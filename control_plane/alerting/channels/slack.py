"""Slack via slack-sdk's AsyncWebClient: one message per notification group or incident.

The first notification is posted with ``chat.postMessage`` (Block Kit); later ones
``chat.update`` that message to the current state and post a short follow-up in its thread,
except an incident's in-place updates (``incident.update_only``: an alert joined, a level
escalated, someone acknowledged), which only edit it. The receipt keeps the channel and thread
``ts`` for the next send. Incident messages link to the incident page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from control_plane.alerting.channels.base import (
    Delivery,
    PermanentSendError,
    RateLimited,
    RetryableSendError,
)
from control_plane.alerting.payload import Notification, message_link, summary_line
from control_plane.alerting.retry import parse_retry_after
from control_plane.config import SlackChannelConfig

_MAX_ALERT_BLOCKS = 10


class SlackChannel:
    kind = "slack"

    def __init__(self, cfg: SlackChannelConfig, *, min_interval_s: float = 1.0) -> None:
        self._cfg = cfg
        self.min_interval_s = min_interval_s
        base = cfg.base_url if cfg.base_url.endswith("/") else cfg.base_url + "/"
        self._client = AsyncWebClient(
            token=cfg.token.get_secret_value(), base_url=base, timeout=int(cfg.timeout_s)
        )

    async def send(
        self,
        notification: Notification,
        *,
        idempotency_key: str,
        previous: Mapping[str, Any] | None = None,
    ) -> Delivery:
        text = summary_line(notification)
        blocks = render_blocks(notification)
        thread = previous.get("thread_ts") if previous else None
        channel = str(previous.get("channel", self._cfg.channel)) if previous else self._cfg.channel
        incident = notification.get("incident")
        url = message_link(notification)
        if url:
            text = f"{text} <{url}|Open the incident>"
        try:
            if thread is None:
                resp = await self._client.chat_postMessage(
                    channel=self._cfg.channel, text=text, blocks=blocks
                )
                return Delivery(
                    resp.status_code,
                    {"channel": resp["channel"], "ts": resp["ts"], "thread_ts": resp["ts"]},
                )
            updated = await self._client.chat_update(
                channel=channel, ts=thread, text=text, blocks=blocks
            )
            if incident is not None and incident.get("update_only"):
                return Delivery(
                    updated.status_code, {"channel": channel, "ts": thread, "thread_ts": thread}
                )
            reply = await self._client.chat_postMessage(
                channel=channel, thread_ts=thread, text=text
            )
            return Delivery(
                reply.status_code, {"channel": channel, "ts": reply["ts"], "thread_ts": thread}
            )
        except SlackApiError as exc:
            raise _translate(exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableSendError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        return None


def _translate(exc: SlackApiError) -> Exception:
    resp = exc.response
    status = resp.status_code
    error = resp.get("error", "unknown") if isinstance(resp.data, dict) else "unknown"
    if status == 429 or error == "ratelimited":
        return RateLimited(parse_retry_after(_header(resp.headers, "Retry-After"), 0.0))
    if status >= 500 or error in ("internal_error", "fatal_error", "service_unavailable"):
        return RetryableSendError(f"Slack {status}: {error}", status=status)
    return PermanentSendError(f"Slack {status}: {error}", status=status)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list) else value)
    return None


def render_blocks(n: Notification) -> list[dict[str, Any]]:
    """Block Kit: a header line, then one section per alert (summary and labels)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": summary_line(n)[:150]}}
    ]
    for alert in n["alerts"][:_MAX_ALERT_BLOCKS]:
        ann = alert["annotations"]
        title = ann.get("summary") or alert["labels"].get("alertname", "alert")
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
        state = alert["status"].upper() + (" (flapping)" if alert["flapping"] else "")
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{state}* {title}\n`{labels}`"[:3000]},
            }
        )
    hidden = len(n["alerts"]) - _MAX_ALERT_BLOCKS
    if hidden > 0:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {hidden} more"}]}
        )
    url = message_link(n)
    if url:
        what = "the incident page" if n.get("incident") is not None else "the incidents"
        link = {"type": "mrkdwn", "text": f"<{url}|Open {what}>"}
        blocks.append({"type": "section", "text": link})
    return blocks
