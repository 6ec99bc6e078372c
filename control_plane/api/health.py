"""``/health`` (liveness), ``/health/detailed`` and ``/health/dependencies`` (readiness)."""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Any

import orjson
import psutil
from aiohttp import web

from control_plane.appkeys import HEALTH, METRICS
from control_plane.health import HEALTH_CONTENT_TYPE, Status, worst
from haetae import __version__

_PROCESS = psutil.Process(os.getpid())


def _respond(body: dict[str, Any], status: Status) -> web.Response:
    return web.Response(
        status=503 if status is Status.FAIL else 200,
        body=orjson.dumps(body),
        content_type=HEALTH_CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


async def liveness(request: web.Request) -> web.Response:
    # The process is up and its event loop answers: nothing else is consulted.
    return _respond(
        {"status": "pass", "version": __version__, "serviceId": "haetae-control-plane"},
        Status.PASS,
    )


async def dependencies(request: web.Request) -> web.Response:
    status, checks = request.app[HEALTH].dependencies()
    return _respond({"status": status.value, "checks": checks, "time": _now_iso()}, status)


async def detailed(request: web.Request) -> web.Response:
    monitor = request.app[HEALTH]
    dep_status, checks = monitor.dependencies()
    now = time.time()
    checks["uptime"] = [
        {
            "componentType": "system",
            "observedValue": round(now - monitor.started_at, 1),
            "observedUnit": "s",
            "status": "pass",
            "time": _now_iso(),
        }
    ]
    checks["memory:utilization"] = [
        {
            "componentId": "process",
            "componentType": "system",
            "observedValue": _PROCESS.memory_info().rss,
            "observedUnit": "bytes",
            "status": "pass",
            "time": _now_iso(),
        }
    ]
    pending = request.app[METRICS].registry.get_sample_value("haetae_ingest_pending_samples")
    checks["ingest:pendingSamples"] = [
        {
            "componentType": "component",
            "observedValue": pending,
            "status": "pass",
            "time": _now_iso(),
        }
    ]
    status = worst([dep_status])
    body = {
        "status": status.value,
        "version": __version__,
        "serviceId": "haetae-control-plane",
        "checks": checks,
        "time": _now_iso(),
    }
    return _respond(body, status)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/health", liveness)
    app.router.add_get("/health/detailed", detailed)
    app.router.add_get("/health/dependencies", dependencies)
