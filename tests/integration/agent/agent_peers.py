"""Real HTTP peers for the agent tests on loopback: a control plane speaking
docs/wire-format.md, and a watched app serving Prometheus metrics and a health URL."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

ENROLMENT_TOKEN = "enrol-secret"

# ``await serve(app, port=0)`` starts ``app`` on loopback and returns its base URL.
Serve = Callable[..., Awaitable[str]]


def _problem(status: int, title: str) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status}
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/problem+json"
    )


@dataclass
class FakeControlPlane:
    """The enrolment and report endpoints of the wire format, with failure switches.

    ``fail_next`` holds statuses to answer (in order) before handling reports normally;
    ``reject_seqs`` are report seqs answered 422; ``lose_answer_once`` stores the next report
    but answers 500, as if the answer were lost on the way back.
    """

    enrolment_token: str = ENROLMENT_TOKEN
    tokens: dict[str, str] = field(default_factory=dict)  # token -> agent_id
    stored: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    reject_seqs: set[int] = field(default_factory=set)
    lose_answer_once: bool = False
    retry_after: str | None = None  # Retry-After header on injected failures
    delay_s: float = 0.0
    enrolments: int = 0
    report_posts: int = 0
    duplicates: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/agents/enroll", self._enroll)
        app.router.add_post("/api/v1/agents/{agent_id}/reports", self._report)
        return app

    @property
    def seqs(self) -> list[int]:
        return [r["seq"] for r in self.stored]

    def revoke_all(self) -> None:
        self.tokens.clear()

    async def wait_for(self, count: int, within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while len(self.stored) < count:
                self.arrived.clear()
                await self.arrived.wait()

    async def _enroll(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.enrolment_token}":
            return _problem(401, "bad enrolment token")
        doc = await request.json()
        agent_id = doc["agent_id"]
        assert isinstance(doc["hostname"], str) and isinstance(doc["labels"], dict)
        for token, owner in list(self.tokens.items()):
            if owner == agent_id:
                del self.tokens[token]  # enrolling again revokes older tokens
        token = f"hta_{uuid.uuid4().hex}"
        self.tokens[token] = agent_id
        self.enrolments += 1
        return web.json_response({"agent_id": agent_id, "token": token}, status=201)

    async def _report(self, request: web.Request) -> web.Response:
        self.report_posts += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_next:
            resp = _problem(self.fail_next.pop(0), "injected failure")
            if self.retry_after is not None:
                resp.headers["Retry-After"] = self.retry_after
            return resp
        auth = request.headers.get("Authorization", "")
        owner = self.tokens.get(auth.removeprefix("Bearer "))
        if owner is None:
            return _problem(401, "unknown token")
        if owner != request.match_info["agent_id"]:
            return _problem(403, "not your agent")
        assert request.headers["Content-Encoding"] == "gzip"
        assert request.headers["Content-Type"] == "application/json"
        raw = await request.read()
        # aiohttp's server inflates gzip request bodies itself; accept either form.
        doc = orjson.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        assert request.headers["Idempotency-Key"] == doc["report_id"]
        if any(r["report_id"] == doc["report_id"] for r in self.stored):
            self.duplicates += 1
            return web.json_response({"accepted": 0, "duplicate": True})
        if doc["seq"] in self.reject_seqs:
            return _problem(422, "poison report")
        self.stored.append(doc)
        self.arrived.set()
        if self.lose_answer_once:
            self.lose_answer_once = False
            return _problem(500, "answer lost")
        return web.json_response({"accepted": len(doc["samples"]), "duplicate": False})


@dataclass
class DemoApp:
    """A watched app: Prometheus metrics (with a histogram) and a health URL."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    health_status: int = 200
    health_delay_s: float = 0.0
    metrics_status: int = 200
    metrics_delay_s: float = 0.0
    padding: int = 0  # extra bytes of comments, to test the body cap

    def __post_init__(self) -> None:
        requests = Counter("demo_requests_total", "Requests.", ["path"], registry=self.registry)
        requests.labels("/").inc(42)
        latency = Histogram("demo_latency_seconds", "Latency.", registry=self.registry)
        for v in (0.01, 0.3, 2.0):
            latency.observe(v)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.metrics_delay_s)
        if self.metrics_status != 200:
            return web.Response(status=self.metrics_status, text="broken")
        body = generate_latest(self.registry) + b"# pad\n" * (self.padding // 6)
        return web.Response(body=body, content_type="text/plain")

    async def _health(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.health_delay_s)
        return web.json_response({"status": "x"}, status=self.health_status)
