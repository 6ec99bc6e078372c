"""The SMS channel against a local server speaking a Twilio-style Messages API, through the
notification pipeline: basic auth and form fields, 429 Retry-After, 5xx backoff, 4xx refusal;
and the SMS length limits (GSM-7 and UCS-2, single and concatenated)."""

from __future__ import annotations

import base64
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
from pydantic import SecretStr

from control_plane.alerting import Notifier, Outcome
from control_plane.alerting.channels.sms import trim_sms
from control_plane.config import NotifyConfig, ReceiverConfig, RouteConfig, SmsChannelConfig

T0 = 1_800_000_000.0
SID = "AC0123456789"
Server = Callable[[web.Application], Awaitable[TestServer]]


@dataclass
class SmsProvider:
    """Records each message; answers from ``script`` (status, headers) first, then 201."""

    received: list[dict[str, str]] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.messages)
        return app

    async def messages(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{SID}:t0ken".encode()).decode()
        if request.headers.get("Authorization") != expected or request.match_info["sid"] != SID:
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.received.append(form)
        if self.script:
            status, headers = self.script.pop(0)
            return web.json_response(
                {"code": 20429 if status == 429 else 20500, "message": "scripted"},
                status=status,
                headers=headers,
            )
        sid = f"SM{len(self.received):032d}"
        return web.json_response({"sid": sid, "status": "queued"}, status=201)


@pytest.fixture
def provider() -> SmsProvider:
    return SmsProvider()


@pytest.fixture
async def provider_url(provider: SmsProvider, aiohttp_server: Server) -> str:
    return str((await aiohttp_server(provider.app())).make_url(""))


def sms_config(url: str, **overrides: Any) -> NotifyConfig:
    values: dict[str, Any] = {
        "account_sid": SID,
        "auth_token": SecretStr("t0ken"),
        "from_number": "+15005550006",
        "to": "+821012345678",
        "base_url": url,
    }
    values.update(overrides)
    return NotifyConfig(
        receivers=[ReceiverConfig(name="phone", sms=[SmsChannelConfig(**values)])],
        routes=[RouteConfig(receiver="phone", group_wait_s=0, group_interval_s=1)],
        retry_base_s=1.0,
        retry_max_s=60.0,
    )


def alert(name: str) -> dict[str, str]:
    return {"alertname": name, "agent": "web-1", "severity": "critical"}


async def test_sms_is_sent_with_429_and_5xx_handled(
    pool: asyncpg.Pool, provider: SmsProvider, provider_url: str
) -> None:
    provider.script = [(429, {"Retry-After": "20"}), (503, {})]
    clock = Clock(T0)
    async with Notifier(
        pool, sms_config(provider_url), clock=clock, background=False, rng=random.Random(7)
    ) as notifier:
        await record_transition(
            pool, T0, alert("X"), "pending", "firing", annotations={"summary": "x" * 300}
        )
        assert await notifier.run_once() == [Outcome.RATE_LIMITED]
        clock.now = T0 + 19
        assert await notifier.run_once() == []  # Retry-After honoured
        clock.now = T0 + 20
        assert await notifier.run_once() == [Outcome.RETRY]
        clock.now = T0 + 22.01  # attempt 2's backoff: 1 to 2 s
        assert await notifier.run_once() == [Outcome.SENT]
    sent = provider.received[-1]
    assert (sent["To"], sent["From"]) == ("+821012345678", "+15005550006")
    assert sent["Body"].startswith("[FIRING:1] X\nfiring: xxx")
    # 160 septets: "[" and "]" are GSM-7 extension characters, two septets each.
    assert len(sent["Body"]) == 158 and sent["Body"].endswith("...")
    row = await pool.fetchrow("SELECT status, attempts, receipt FROM notify_outbox")
    assert row is not None
    assert (row["status"], row["attempts"]) == ("sent", 3)
    assert row["receipt"] == {"sid": f"SM{3:032d}", "status": "queued"}


async def test_sms_refusal_and_bad_credentials_are_permanent(
    pool: asyncpg.Pool, provider: SmsProvider, provider_url: str
) -> None:
    provider.script = [(400, {})]  # e.g. Twilio 21211: invalid 'To' number
    async with Notifier(
        pool, sms_config(provider_url), clock=Clock(T0), background=False
    ) as notifier:
        await record_transition(pool, T0, alert("X"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.FAILED]
    cfg = sms_config(provider_url, auth_token=SecretStr("wrong"))
    async with Notifier(pool, cfg, clock=Clock(T0 + 10), background=False) as notifier:
        await record_transition(pool, T0 + 10, alert("Y"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.FAILED]
    rows = await pool.fetch("SELECT status, response_status FROM notify_outbox ORDER BY 1, 2")
    assert [(r["status"], r["response_status"]) for r in rows] == [
        ("failed", 400),
        ("failed", 401),
    ]


def test_sms_length_limits() -> None:
    assert trim_sms("short") == "short"
    gsm = trim_sms("a" * 200)
    assert len(gsm) == 160 and gsm.endswith("...")
    assert len(trim_sms("a" * 400, max_segments=2)) == 306
    # An extension character (here "€") takes two septets.
    assert trim_sms("€" * 100).count("€") == 78
    # One character outside GSM-7 (Korean) makes the whole message UCS-2: 70 / 67 per segment.
    korean = trim_sms("디스크 가득 참 " * 20)
    assert len(korean) == 70 and korean.endswith("…")
    assert len(trim_sms("가" * 300, max_segments=3)) == 201
    # Characters outside the BMP take two UTF-16 units.
    assert len(trim_sms("🔥" * 50).encode("utf-16-le")) // 2 <= 70
