"""KakaoTalk AlimTalk through NHN Cloud's send API (v2.3 shape): ``POST
{base}/alimtalk/v2.3/appkeys/{appKey}/messages`` with ``X-Secret-Key``, the sender key, an
approved template code and its parameters.

Two fallbacks to SMS: provider-side, ``resendParameter`` asks NHN to send the text as SMS when
KakaoTalk cannot deliver it; ours, when the API refuses the message (a 4xx, or a result code
saying it will not be sent) it goes out through the configured SMS API instead.

NHN answers HTTP 200 with ``header.isSuccessful`` and a per-recipient ``resultCode``: a refusal
there is permanent, like a 4xx. The outbox's idempotency key goes in as ``senderGroupingKey``
(hashed to fit its 100 characters) so that a resend after a crash can be found in NHN's logs.
"""

from __future__ import annotations

import hashlib
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
from control_plane.alerting.channels.sms import SmsChannel, render_sms, trim_sms
from control_plane.alerting.payload import Notification, message_link, summary_line
from control_plane.config import AlimTalkChannelConfig

# AlimTalk's limit for one template parameter's value (the whole message: 1000 characters).
_MAX_PARAMETER = 1000
# An approved template shows every parameter: one with nothing to say reads as this, never as
# an empty line such as "link: ".
_NOTHING = "-"


def template_fields(n: Notification) -> dict[str, str]:
    """The values ``template_parameters`` may use."""
    alerts = n["alerts"]
    names = sorted({a["labels"].get("alertname", "?") for a in alerts})
    summaries = [a["annotations"].get("summary", "") for a in alerts]
    return {
        "status": n["status"].upper(),
        "title": summary_line(n),
        "alertname": ", ".join(names),
        "summary": "\n".join(s for s in summaries if s) or ", ".join(names),
        "count": str(sum(1 for a in alerts if a["status"] == "firing")),
        "url": message_link(n) or "",
    }


def build_request(
    n: Notification, cfg: AlimTalkChannelConfig, *, idempotency_key: str
) -> dict[str, Any]:
    fields = template_fields(n)
    recipient: dict[str, Any] = {
        "recipientNo": cfg.to,
        "templateParameter": {
            name: template.format_map(fields)[:_MAX_PARAMETER].strip() or _NOTHING
            for name, template in cfg.template_parameters.items()
        },
    }
    if cfg.resend_send_no is not None:
        text = render_sms(n)
        recipient["resendParameter"] = {
            "isResend": True,
            "resendType": "SMS",
            "resendContent": trim_sms(text),
            "resendSendNo": cfg.resend_send_no,
        }
    return {
        "senderKey": cfg.sender_key,
        "templateCode": cfg.template_code,
        "senderGroupingKey": hashlib.sha256(idempotency_key.encode()).hexdigest(),
        "recipientList": [recipient],
    }


class AlimTalkChannel:
    kind = "alimtalk"

    def __init__(self, cfg: AlimTalkChannelConfig, *, min_interval_s: float = 0.0) -> None:
        self._cfg = cfg
        self.min_interval_s = min_interval_s
        self._session: aiohttp.ClientSession | None = None
        self._sms = SmsChannel(cfg.fallback_sms) if cfg.fallback_sms is not None else None

    async def send(
        self,
        notification: Notification,
        *,
        idempotency_key: str,
        previous: Mapping[str, Any] | None = None,
    ) -> Delivery:
        try:
            return await self._send_alimtalk(notification, idempotency_key)
        except PermanentSendError as exc:
            if self._sms is None:
                raise
            # A retryable SMS failure retries the whole send: AlimTalk refuses it again.
            sms = await self._sms.send_text(
                render_sms(notification), idempotency_key=f"{idempotency_key}/sms"
            )
            return Delivery(
                sms.status, {"fallback": "sms", "alimtalk_error": exc.reason, **sms.receipt}
            )

    async def _send_alimtalk(self, n: Notification, idempotency_key: str) -> Delivery:
        cfg = self._cfg
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)
            )
        url = f"{cfg.base_url.rstrip('/')}/alimtalk/v2.3/appkeys/{cfg.app_key}/messages"
        request = build_request(n, cfg, idempotency_key=idempotency_key)
        headers = {
            "Content-Type": "application/json;charset=UTF-8",
            "X-Secret-Key": cfg.secret_key.get_secret_value(),
        }
        status, body = await post(
            self._session, url, data=orjson.dumps(request), headers=headers, max_body=16384
        )
        return _receipt(status, body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._sms is not None:
            await self._sms.close()


def _receipt(status: int, body: bytes) -> Delivery:
    """A 200 is only a success when NHN's header and the recipient's result say so."""
    try:
        data = orjson.loads(body)
        header = data["header"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise RetryableSendError(f"AlimTalk: unreadable answer {body[:100]!r}") from exc
    if not header.get("isSuccessful"):
        code, text = header.get("resultCode"), header.get("resultMessage", "")
        raise PermanentSendError(f"AlimTalk {code}: {text}"[:300], status=status)
    message = data.get("message") or {}
    results = message.get("sendResults") or []
    for result in results:
        if result.get("resultCode", 0) != 0:
            code, text = result.get("resultCode"), result.get("resultMessage", "")
            raise PermanentSendError(f"AlimTalk recipient {code}: {text}"[:300], status=status)
    return Delivery(status, {"request_id": message.get("requestId")})
