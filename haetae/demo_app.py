"""A small app for ``haetae up`` to watch: Prometheus metrics, a health URL, some traffic.

It generates its own steady traffic so the boards and rules have something to show, and its
state can be flipped over HTTP (``POST /demo/state``) to exercise alerts: healthy, degraded
(slow, erroring, cache misses) or failing (health answers 503).

With a push URL (``push_url``, or ``HAETAE_DEMO_PUSH_URL``; ``haetae up`` sets it to its agent's
``/v1/push``), a state change is also pushed to the agent at once, so alerts on ``demo_state`` /
``demo_value`` do not wait for the next scrape (docs/operations.md, "Pushing samples").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from haetae.cache import CacheStats, L1Cache

STATES = ("healthy", "degraded", "failing")

# The demo's cache: a real haetae.cache L1 read on every simulated request (demo_cache_lookup).
DEMO_CACHE_ENTRIES = 1000
DEMO_HOT_ITEMS = 200
# No TTL: expiring the popular items together would dip the hit ratio on its own every TTL.
DEMO_CACHE_TTL_S: float | None = None


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
        # Exported as haetae_cache_requests_total{cache="demo",layer="l1",outcome} (and sizes,
        # evictions): the series the default CacheHitRatioDrop rule reads. demo_cache_*_total
        # count the same lookups for rules written against them.
        self.cache = L1Cache(DEMO_CACHE_ENTRIES)
        self.cache_stats = CacheStats("demo", r)
        self.cache_stats.l1 = self.cache
        self.queue_depth = Gauge("demo_queue_depth", "Jobs waiting.", registry=r)
        self.state = Gauge("demo_state", "0 healthy, 1 degraded, 2 failing.", registry=r)
        self.value = Gauge("demo_value", "A value set over HTTP for alert tests.", registry=r)


STATE: web.AppKey[dict[str, str]] = web.AppKey("state", dict)
METRICS: web.AppKey[DemoMetrics] = web.AppKey("metrics", DemoMetrics)
PUSHER: web.AppKey[StatePusher] = web.AppKey("pusher")

log = logging.getLogger("haetae.demo_app")


class StatePusher:
    """Pushes the state gauges to the agent's ``/v1/push`` when they change (fire and forget:
    the scrape still picks them up if a push fails)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def ctx(self, app: web.Application) -> AsyncIterator[None]:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        yield
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._session.close()

    def push(self, *gauges: Gauge) -> None:
        lines = [
            f"{s.name} {s.value!r}"
            for g in gauges
            for family in g.collect()
            for s in family.samples
        ]
        task = asyncio.create_task(self._send("\n".join(lines) + "\n"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, text: str) -> None:
        if self._session is None:
            return
        try:
            async with self._session.post(
                self.url, data=text.encode(), headers={"Content-Type": "text/plain"}
            ) as resp:
                if resp.status >= 300:
                    log.warning(
                        "push to %s answered %d: %s", self.url, resp.status, await resp.text()
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.debug("push to %s failed (the scrape will pick it up): %r", self.url, exc)


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
    pusher = request.app.get(PUSHER)
    if pusher is not None:
        pusher.push(m.state, m.value)
    return web.json_response({"state": request.app[STATE]["state"]})


def simulate_request(app: web.Application, path: str) -> dict[str, object]:
    m = app[METRICS]
    state = app[STATE]["state"]
    degraded = state != "healthy"
    hit = demo_cache_lookup(m, degraded)
    error = random.random() < (0.2 if degraded else 0.01)
    latency = random.uniform(0.2, 3.0) if degraded else random.expovariate(1 / 0.02)
    m.latency.labels(path).observe(latency)
    m.requests.labels(path, "500" if error else "200").inc()
    m.queue_depth.set(random.randint(50, 200) if degraded else random.randint(0, 5))
    return {"cache_hit": hit, "error": error, "latency_s": latency}


def demo_cache_lookup(m: DemoMetrics, degraded: bool) -> bool:
    """One read through the demo's L1: a popular item (cached after its first read) or a
    one-off one (always a miss, then cached). Healthy traffic reads popular items 85 % of the
    time, degraded traffic 30 %, so the cache's own hit ratio drops from ~85 % to ~30 %."""
    if random.random() < (0.3 if degraded else 0.85):
        key = f"item:{random.randrange(DEMO_HOT_ITEMS)}"
    else:
        key = f"once:{random.getrandbits(64):x}"
    hit = m.cache.get_entry(key) is not None
    if not hit:
        m.cache.set(key, {"item": key}, ttl=DEMO_CACHE_TTL_S)
        m.cache_stats.hot.record(key)
    (m.cache_hits if hit else m.cache_misses).inc()
    return hit


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


def create_demo_app(
    *, generate_traffic: bool = True, push_url: str | None = None
) -> web.Application:
    app = web.Application()
    app[STATE] = {"state": "healthy", "started": str(time.time())}
    app[METRICS] = DemoMetrics()
    push_url = push_url if push_url is not None else os.environ.get("HAETAE_DEMO_PUSH_URL")
    if push_url:
        app[PUSHER] = StatePusher(push_url)
        app.cleanup_ctx.append(app[PUSHER].ctx)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/work", handle_work)
    app.router.add_post("/demo/state", handle_set_state)
    if generate_traffic:
        app.cleanup_ctx.append(traffic)
    return app
