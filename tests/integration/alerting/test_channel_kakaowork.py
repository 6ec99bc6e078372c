"""The Kakao Work bot channel against a local server speaking ``/v1/messages.send``, through the
notification pipeline: Bearer app key, text + blocks, 429 Retry-After, 5xx backoff, refusals."""

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
from pydantic import SecretStr

from control_plane.alerting import Notifier, Outcome
from control_plane.config import KakaoWorkChannelConfig, NotifyConfig, ReceiverConfig, RouteConfig

T0 = 1_800_000_000.0
Server = Callable[[web.Application], Awaitable[TestServer]]


@dataclass
class KakaoWork:
    """Records each message; answers from ``script`` (status, headers, error code) first."""

    received: list[dict[str, Any]] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages.send", self.send)
        return app

    async def send(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer bot-app-key":
            error = {"code": "unauthorized", "message": "invalid app key"}
            return web.json_response({"success": False, "error": error}, status=401)
        body = await request.json()
        self.received.append(body)
        if self.script:
            status, headers, code = self.script.pop(0)
            return web.json_response(
                {"success": False, "error": {"code": code, "message": "scripted"}},
                status=status,
                headers=headers,
            )
        message = {"id": str(len(self.received)), "conversation_id": body["conversation_id"]}
        return web.json_response({"success": True, "message": message})


@pytest.fixture
def work() -> KakaoWork:
    return KakaoWork()


@pytest.fixture
async def work_url(work: KakaoWork, aiohttp_server: Server) -> str:
    return str((await aiohttp_server(work.app())).make_url(""))


def work_config(url: str, key: str = "bot-app-key") -> NotifyConfig:
    bot = KakaoWorkChannelConfig(app_key=SecretStr(key), conversation_id="1234", base_url=url)
    return NotifyConfig(
        receivers=[ReceiverConfig(name="work", kakaowork=[bot])],
        routes=[RouteConfig(receiver="work", group_wait_s=0, group_interval_s=1)],
        retry_base_s=1.0,
        retry_max_s=60.0,
    )


def alert(name: str) -> dict[str, str]:
    return {"alertname": name, "agent": "web-1", "severity": "critical"}


async def test_kakaowork_message_with_429_and_5xx(
    pool: asyncpg.Pool, work: KakaoWork, work_url: str
) -> None:
    work.script = [(429, {"Retry-After": "3"}, "too_many_requests"), (500, {}, "internal")]
    clock = Clock(T0)
    async with Notifier(
        pool, work_config(work_url), clock=clock, background=False, rng=random.Random(7)
    ) as notifier:
        await record_transition(
            pool, T0, alert("X"), "pending", "firing", annotations={"summary": "p95 > 2s"}
        )
        assert await notifier.run_once() == [Outcome.RATE_LIMITED]
        clock.now = T0 + 2.9
        assert await notifier.run_once() == []  # Retry-After honoured
        clock.now = T0 + 3
        assert await notifier.run_once() == [Outcome.RETRY]
        clock.now = T0 + 5.01
        assert await notifier.run_once() == [Outcome.SENT]
        await record_transition(pool, T0 + 6, alert("X"), "firing", "resolved")
        clock.now = T0 + 7
        assert await notifier.run_once() == [Outcome.SENT]
    firing, resolved = work.received[2], work.received[3]
    assert firing["conversation_id"] == "1234"
    assert firing["text"] == "[FIRING:1] X"
    assert firing["blocks"][0] == {"type": "header", "text": "Firing", "style": "red"}
    assert "p95 > 2s" in str(firing["blocks"])
    assert resolved["text"] == "[RESOLVED] X"
    assert resolved["blocks"][0]["style"] == "blue"
    receipts = await pool.fetch("SELECT receipt FROM notify_outbox ORDER BY outbox_id")
    assert [r["receipt"] for r in receipts] == [{"message_id": "3"}, {"message_id": "4"}]


async def test_kakaowork_refusals_are_permanent(
    pool: asyncpg.Pool, work: KakaoWork, work_url: str
) -> None:
    # A 4xx, and a 200 whose body says the message was not accepted.
    work.script = [(400, {}, "conversation_not_found"), (200, {}, "invalid_blocks")]
    async with Notifier(pool, work_config(work_url), clock=Clock(T0), background=False) as notifier:
        await record_transition(pool, T0, alert("X"), "pending", "firing")
        await record_transition(pool, T0, alert("Z"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.FAILED, Outcome.FAILED]
    async with Notifier(
        pool, work_config(work_url, key="wrong"), clock=Clock(T0 + 10), background=False
    ) as notifier:
        await record_transition(pool, T0 + 10, alert("Y"), "pending", "firing")
        assert await notifier.run_once() == [Outcome.FAILED]
    rows = await pool.fetch(
        "SELECT response_status, last_error FROM notify_outbox ORDER BY outbox_id"
    )
    assert [r["response_status"] for r in rows] == [400, 200, 401]
    assert "conversation_not_found" in rows[0]["last_error"]
    assert "invalid_blocks" in rows[1]["last_error"]
