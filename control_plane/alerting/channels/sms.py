"""SMS through a Twilio-style Messages API: ``POST {base}/2010-04-01/Accounts/{sid}/Messages.json``
with basic auth and the form fields ``To``, ``From``, ``Body``; the text trimmed to the SMS
length limits (GSM-7 or UCS-2, single or concatenated segments)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from control_plane.alerting.channels.base import Delivery
from control_plane.alerting.channels.http_status import post
from control_plane.alerting.payload import Notification, message_link, summary_line
from control_plane.config import SmsChannelConfig

# GSM 03.38: the basic set (one septet each) and the extension set (escape + one septet).
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = "^{}\\[~]|€\f"
_GSM = set(_GSM_BASIC) | set(_GSM_EXTENDED)


def _gsm_len(text: str) -> int:
    return sum(2 if c in _GSM_EXTENDED else 1 for c in text)


def _ucs2_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def sms_limit(text: str, max_segments: int) -> tuple[int, bool]:
    """(length budget, is GSM-7) for ``text`` in at most ``max_segments`` segments: 160/70
    characters alone, 153/67 per segment when concatenated (the UDH takes the rest)."""
    gsm = all(c in _GSM for c in text)
    if max_segments == 1:
        return (160 if gsm else 70), gsm
    return (153 if gsm else 67) * max_segments, gsm


def trim_sms(text: str, max_segments: int = 1) -> str:
    """``text`` cut to fit ``max_segments`` segments, ending in an ellipsis when cut."""
    limit, gsm = sms_limit(text, max_segments)
    measure = _gsm_len if gsm else _ucs2_len
    if measure(text) <= limit:
        return text
    ellipsis = "..." if gsm else "…"
    budget = limit - measure(ellipsis)
    out: list[str] = []
    used = 0
    for char in text:
        size = measure(char)
        if used + size > budget:
            break
        out.append(char)
        used += size
    return "".join(out).rstrip() + ellipsis


def render_sms(n: Notification) -> str:
    """The summary line, then each alert's summary (or name), one per line."""
    lines = [summary_line(n)]
    for alert in n["alerts"]:
        title = alert["annotations"].get("summary") or alert["labels"].get("alertname", "")
        agent = alert["labels"].get("agent")
        lines.append(f"{alert['status']}: {title}" + (f" @{agent}" if agent else ""))
    url = message_link(n)
    if url:
        lines.append(url)
    return "\n".join(lines)


class SmsChannel:
    kind = "sms"

    def __init__(self, cfg: SmsChannelConfig, *, min_interval_s: float = 0.0) -> None:
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
        return await self.send_text(render_sms(notification), idempotency_key=idempotency_key)

    async def send_text(self, text: str, *, idempotency_key: str) -> Delivery:
        """Send ``text`` (trimmed to the configured segments) to the configured number."""
        cfg = self._cfg
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)
            )
        url = f"{cfg.base_url.rstrip('/')}/2010-04-01/Accounts/{cfg.account_sid}/Messages.json"
        form = {"To": cfg.to, "From": cfg.from_number, "Body": trim_sms(text, cfg.max_segments)}
        credentials = f"{cfg.account_sid}:{cfg.auth_token.get_secret_value()}".encode()
        headers = {
            "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
            "Idempotency-Key": idempotency_key,
        }
        status, body = await post(self._session, url, data=form, headers=headers, max_body=4096)
        data = _json(body)
        return Delivery(status, {k: data[k] for k in ("sid", "status") if k in data})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}
