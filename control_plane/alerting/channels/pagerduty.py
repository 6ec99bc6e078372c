"""PagerDuty Events API v2: ``trigger`` while the group has firing alerts, ``resolve`` when it
has none, deduplicated per group (``dedup_key``) so PagerDuty keeps one incident per group."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from control_plane.alerting.channels.base import (
    Delivery,
    PermanentSendError,
    RateLimited,
    RetryableSendError,
)
from control_plane.alerting.payload import Notification, summary_line
from control_plane.alerting.retry import parse_retry_after
from control_plane.config import PagerDutyChannelConfig

_SEVERITIES = {"critical": "critical", "warning": "warning", "info": "info"}


class PagerDutyChannel:
    kind = "pagerduty"

    def __init__(self, cfg: PagerDutyChannelConfig, *, min_interval_s: float = 0.0) -> None:
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
        event = build_event(notification, self._cfg.routing_key.get_secret_value())
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._cfg.timeout_s)
            )
        try:
            async with self._session.post(
                self._cfg.url,
                data=orjson.dumps(event),
                headers={"Content-Type": "application/json"},
            ) as resp:
                body = await resp.content.read(4096)
                if resp.status == 429:
                    raise RateLimited(
                        parse_retry_after(resp.headers.get("Retry-After"), time.time())
                    )
                if resp.status >= 500:
                    raise RetryableSendError(f"HTTP {resp.status}", status=resp.status)
                if resp.status >= 400:
                    text = body.decode("utf-8", "replace")[:200]
                    raise PermanentSendError(f"HTTP {resp.status}: {text}", status=resp.status)
                return Delivery(resp.status, {"dedup_key": event["dedup_key"]})
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableSendError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def build_event(n: Notification, routing_key: str) -> dict[str, Any]:
    firing = n["status"] == "firing"
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger" if firing else "resolve",
        "dedup_key": n["groupKey"][:255],
    }
    if firing:
        labels = n["commonLabels"]
        event["payload"] = {
            "summary": summary_line(n)[:1024],
            "source": labels.get("agent", "haetae"),
            "severity": _SEVERITIES.get(labels.get("severity", ""), "error"),
            "custom_details": {
                "alerts": [
                    {"labels": a["labels"], "annotations": a["annotations"], "status": a["status"]}
                    for a in n["alerts"]
                ]
            },
        }
    return event
