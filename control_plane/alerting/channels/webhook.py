"""Generic webhook: POSTs Alertmanager's webhook payload (version 4) as JSON."""

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
from control_plane.alerting.payload import Notification
from control_plane.alerting.retry import parse_retry_after
from control_plane.config import WebhookChannelConfig


class WebhookChannel:
    kind = "webhook"

    def __init__(self, cfg: WebhookChannelConfig, *, min_interval_s: float = 0.0) -> None:
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
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._cfg.timeout_s)
            )
        headers = {k: v.get_secret_value() for k, v in self._cfg.headers.items()}
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = idempotency_key
        try:
            async with self._session.post(
                self._cfg.url, data=orjson.dumps(notification), headers=headers
            ) as resp:
                body = await resp.content.read(4096)
                if resp.status == 429:
                    raise RateLimited(
                        parse_retry_after(resp.headers.get("Retry-After"), time.time())
                    )
                if resp.status >= 500 or resp.status == 408:
                    raise RetryableSendError(f"HTTP {resp.status}", status=resp.status)
                if resp.status >= 400:
                    text = body.decode("utf-8", "replace")[:200]
                    raise PermanentSendError(f"HTTP {resp.status}: {text}", status=resp.status)
                return Delivery(resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableSendError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
