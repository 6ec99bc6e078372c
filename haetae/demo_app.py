"""A small app for ``haetae up`` to watch: Prometheus metrics, a health URL, some traffic.

It generates its own steady traffic so the boards and rules have something to show, and its
state can be flipped over HTTP (``POST /demo/state``) to exercise alerts: healthy, degraded
(slow, erroring, cache misses) or failing (health answers 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

STATES = ("healthy", "degraded", "failing")


class DemoMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "demo_http_requests_total", "Requests served.", ["path", "status"], registry=r
        )
        self.latency = Histogram(
            "demo_http_request_duration_seconds",
            "Request latency.",
            ["path"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.cache_hits = Counter("demo_cache_hits_total", "Cache hits.", registry=r)
        self.cache_misses = Counter("demo_cache_misses_total", "Cache misses.", registry=r)
        self.queue_depth = Gauge("demo_queue_depth", "Jobs waiting.", registry=r)
        self.state = Gauge("demo_state", "0 healthy, 1 degraded, 2 failing.", registry=r)
        self.value = Gauge("demo_value", "A value set over HTTP for alert tests.", registry=r)


STATE: web.AppKey[dict[str, str]] = web.AppKey("state", dict)
METRICS: web.AppKey[DemoMetrics] = web.AppKey("metrics", DemoMetrics)


async def handle_metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def handle_health(request: web.Request) -> web.Response:
    state = request.app[STATE]["state"]
    status = 503 if state == "failing" else 200
    return web.json_response({"status": "fail" if status == 503 else "pass"}, status=status)


async def handle_work(request: web.Request) -> web.Response:
    return web.json_response(simulate_request(request.app, "/work"))


async def handle_set_state(request: web.Request) -> web.Response:
    body = await request.json()
    state = body.get("state") if isinstance(body, dict) else None
    if state not in STATES and "value" not in body:
        return web.json_response({"error": f"state must be one of {STATES}"}, status=400)
    m = request.app[METRICS]
    if state is not None:
        request.app[STATE]["state"] = state
        m.state.set(STATES.index(state))
    if "value" in body:
        m.value.set(float(body["value"]))
    return web.json_response({"state": request.app[STATE]["state"]})


def simulate_request(app: web.Application, path: str) -> dict[str, object]:
    m = app[METRICS]
    state = app[STATE]["state"]
    degraded = state != "healthy"
    hit = random.random() < (0.3 if degraded else 0.85)
    (m.cache_hits if hit else m.cache_misses).inc()
    error = random.random() < (0.2 if degraded else 0.01)
    latency = random.uniform(0.2, 3.0) if degraded else random.expovariate(1 / 0.02)
    m.latency.labels(path).observe(latency)
    m.requests.labels(path, "500" if error else "200").inc()
    m.queue_depth.set(random.randint(50, 200) if degraded else random.randint(0, 5))
    return {"cache_hit": hit, "error": error, "latency_s": latency}


async def traffic(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            simulate_request(app, random.choice(("/", "/api/items", "/api/analyze")))
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_demo_app(*, generate_traffic: bool = True) -> web.Application:
    app = web.Application()
    app[STATE] = {"state": "healthy", "started": str(time.time())}
    app[METRICS] = DemoMetrics()
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/work", handle_work)
    app.router.add_post("/demo/state", handle_set_state)
    if generate_traffic:
        app.cleanup_ctx.append(traffic)
    return app
