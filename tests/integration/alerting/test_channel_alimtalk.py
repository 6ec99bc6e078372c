"""The KakaoTalk AlimTalk channel against a local server speaking NHN Cloud's AlimTalk v2.3 send
API (and a Twilio-style SMS API for the fallback), through the notification pipeline."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from alerting_support import Clock
from notify_support import record_transition
from pydantic import SecretStr, ValidationError

from control_plane.alerting import Notifier, Outcome
from control_plane.config import (
    AlimTalkChannelConfig,
    NotifyConfig,
    ReceiverConfig,
    RouteConfig,
    SmsChannelConfig,
)

T0 = 1_800_000_000.0
APP_KEY = "nhn-app-key"
Server = Callable[[web.Application], Awaitable[TestServer]]


def _nhn_header(code: int, message: str) -> dict[str, Any]:
    return {"resultCode": code, "resultMessage": message, "isSuccessful": code == 0}


@dataclass
class KakaoProvider:
    """NHN AlimTalk send API plus an SMS API. ``script`` answers AlimTalk sends first:
    (HTTP status, headers, NHN result code)."""

    alimtalk: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    sms: list[dict[str, str]] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], int]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/alimtalk/v2.3/appkeys/{app_key}/messages", self.send)
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.send_sms)
        return app

    async def send(self, request: web.Request) -> web.Response:
        if request.match_info["app_key"] != APP_KEY:
            return web.json_response({"header": _nhn_header(-1006, "Invalid appkey")})
        if request.headers.get("X-Secret-Key") != "s3cret":
            return web.json_response(
                {"header": _nhn_header(-1004, "Invalid secret key")}, status=401
            )
        body = await request.json()
        self.alimtalk.append((dict(request.headers), body))
        status, headers, code = self.script.pop(0) if self.script else (200, {}, 0)
        if status != 200 or code != 0:
            return web.json_response(
                {"header": _nhn_header(code or -9999, "scripted")}, status=status, headers=headers
            )
        return web.json_response(
            {
                "header": _nhn_header(0, "success"),
                "message": {
                    "requestId": f"2026112717000000ab{len(self.alimtalk):04d}",
                    "senderGroupingKey": body.get("senderGroupingKey"),
                    "sendResults": [
                        {
                            "recipientSeq": 1,
                            "recipientNo": body["recipientList"][0]["recipientNo"],
                            "resultCode": 0,
                            "resultMessage": "SUCCESS",
                        }
                    ],
                },
            }
        )

    async def send_sms(self, request: web.Request) -> web.Response:
        self.sms.append({k: str(v) for k, v in (await request.post()).items()})
        return web.json_response({"sid": "SM1", "status": "queued"}, status=201)


@pytest.fixture
def provider() -> KakaoProvider:
    return KakaoProvider()


@pytest.fixture
async def provider_url(provider: KakaoProvider, aiohttp_server: Server) -> str:
    return str((await aiohttp_server(provider.app())).make_url(""))


def alimtalk_config(url: str, **overrides: Any) -> NotifyConfig:
    values: dict[str, Any] = {
        "app_key": APP_KEY,
        "secret_key": SecretStr("s3cret"),
        "sender_key": "sender-key-1",
        "template_code": "HAETAE_ALERT",
        "template_parameters": {"status": "{status}", "title": "{title}", "n": "{count}"},
        "to": "01012345678",
        "base_url": url,
        "resend_send_no": "0212345678",
    }
    values.update(overrides)
    return NotifyConfig(
        receivers=[ReceiverConfig(name="kakao", alimtalk=[AlimTalkChannelConfig(**values)])],
        routes=[RouteConfig(receiver="kakao", group_wait_s=0, group_interval_s=1)],
        retry_base_s=1.0,
        retry_max_s=60.0,
    )


def alert(name: str) -> dict[str, str]:
    return {"alertname": name, "agent": "web-1", "severity": "critical"}


async def test_alimtalk_send_with_429_and_5xx_keeps_one_idempotency_key(
    pool: asyncpg.Pool, provider: KakaoProvider, provider_url: str
) -> None:
    provider.script = [(429, {"Retry-After": "5"}, -9999), (502, {}, -9999)]
    clock = Clock(T0)
    async with Notifier(
        pool, alimtalk_config(provider_url), clock=clock, background=False, rng=random.Random(7)
    ) as notifier:
        await record_transition(pool, T0, alert("CacheHitDrop"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.RATE_LIMITED]
        clock.now = T0 + 4.9
        assert await notifier.run_once() == []  # Retry-After honoured
        clock.now = T0 + 5
        assert await notifier.run_once() == [Outcome.RETRY]
        clock.now = T0 + 7.01
        assert await notifier.run_once() == [Outcome.SENT]
    assert len(provider.alimtalk) == 3
    keys = {body["senderGroupingKey"] for _, body in provider.alimtalk}
    assert len(keys) == 1 and len(keys.pop()) <= 100
    _, body = provider.alimtalk[-1]
    assert (body["senderKey"], body["templateCode"]) == ("sender-key-1", "HAETAE_ALERT")
    (recipient,) = body["recipientList"]
    assert recipient["recipientNo"] == "01012345678"
    assert recipient["templateParameter"] == {
        "status": "FIRING",
        "title": "[FIRING:1] CacheHitDrop",
        "n": "1",
    }
    resend = recipient["resendParameter"]
    assert resend["isResend"] is True and resend["resendType"] == "SMS"
    assert resend["resendSendNo"] == "0212345678"
    assert resend["resendContent"].startswith("[FIRING:1] CacheHitDrop")
    receipt = await pool.fetchval("SELECT receipt FROM notify_outbox")
    assert receipt == {"request_id": "2026112717000000ab0003"}


async def test_refused_alimtalk_falls_back_to_sms(
    pool: asyncpg.Pool, provider: KakaoProvider, provider_url: str
) -> None:
    sms = SmsChannelConfig(
        account_sid="AC1",
        auth_token=SecretStr("t"),
        from_number="+15005550006",
        to="+821012345678",
        base_url=provider_url,
    )
    cfg = alimtalk_config(provider_url, fallback_sms=sms)
    # A template the provider does not know: HTTP 200, but NHN says it will not send it.
    provider.script = [(200, {}, -3010)]
    async with Notifier(pool, cfg, clock=Clock(T0), background=False) as notifier:
        await record_transition(pool, T0, alert("X"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.SENT]
    assert len(provider.alimtalk) == 1
    (text,) = provider.sms
    assert text["To"] == "+821012345678" and text["Body"].startswith("[FIRING:1] X")
    receipt = await pool.fetchval("SELECT receipt FROM notify_outbox")
    assert receipt["fallback"] == "sms" and "-3010" in receipt["alimtalk_error"]


async def test_refusals_without_fallback_are_failed(
    pool: asyncpg.Pool, provider: KakaoProvider, provider_url: str
) -> None:
    provider.script = [(400, {}, -1000)]
    async with Notifier(
        pool, alimtalk_config(provider_url), clock=Clock(T0), background=False
    ) as notifier:
        await record_transition(pool, T0, alert("X"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.FAILED]
    cfg = alimtalk_config(provider_url, secret_key=SecretStr("wrong"))
    async with Notifier(pool, cfg, clock=Clock(T0 + 10), background=False) as notifier:
        await record_transition(pool, T0 + 10, alert("Y"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.FAILED]
    rows = await pool.fetch("SELECT response_status FROM notify_outbox ORDER BY outbox_id")
    assert [r["response_status"] for r in rows] == [400, 401]
    assert provider.sms == []


def test_unknown_template_field_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"template_parameters.x: unknown field \{nope\}"):
        AlimTalkChannelConfig(
            app_key="a",
            secret_key=SecretStr("s"),
            sender_key="k",
            template_code="T",
            template_parameters={"x": "{nope}"},
            to="010",
        )
