"""The agent's own HTTP endpoints on loopback: GET /metrics and GET /health."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from agent.http.server import Answer, Handler, HttpServer

HealthSource = Callable[[], tuple[dict[str, Any], int]]

__all__ = ["HttpServer", "build_routes"]


def build_routes(registry: CollectorRegistry, health: HealthSource) -> dict[str, Handler]:
    def metrics() -> Answer:
        return 200, CONTENT_TYPE_LATEST, generate_latest(registry), {}

    def health_() -> Answer:
        doc, status = health()
        return status, "application/health+json", orjson.dumps(doc), {"Cache-Control": "no-store"}

    return {"/metrics": metrics, "/health": health_}
