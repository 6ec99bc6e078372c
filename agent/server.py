"""The agent's own HTTP endpoints on loopback: GET /metrics and GET /health."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

HealthSource = Callable[[], tuple[dict[str, Any], int]]

REGISTRY = web.AppKey("registry", CollectorRegistry)
HEALTH: web.AppKey[HealthSource] = web.AppKey("health")


def build_app(registry: CollectorRegistry, health: HealthSource) -> web.Application:
    app = web.Application()
    app[REGISTRY] = registry
    app[HEALTH] = health
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/health", _health)
    return app


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _health(request: web.Request) -> web.Response:
    doc, status = request.app[HEALTH]()
    return web.Response(
        body=orjson.dumps(doc),
        status=status,
        headers={"Content-Type": "application/health+json", "Cache-Control": "no-store"},
    )


class HttpServer:
    """Serves ``app`` on ``host:port`` (port 0 picks a free one; see ``port``)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        # No access log: a Prometheus scrape every few seconds would be most of the agent's logs.
        # A short shutdown timeout keeps SIGTERM prompt; handlers here answer in milliseconds.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        self._host = host
        self._port = port
        self.port: int | None = None

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self._port

    async def stop(self) -> None:
        await self._runner.cleanup()
