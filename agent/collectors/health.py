"""Probe the watched app's health URL: up (2xx), latency and status code."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent.collectors.base import Collector, Sample, register
from agent.errors import CollectorError
from agent.http.client import HttpClient, HttpError

if TYPE_CHECKING:
    from agent.settings import AgentSettings

# Read (and discard) at most this much of the body; past it the connection is not reused.
_BODY_LIMIT = 64 * 1024


@register
class HealthProbeCollector(Collector):
    """An answer of any status is an observation (up is 0 for non-2xx); no answer at all
    (refused, timed out) is a failed collection that still reports up 0."""

    name = "health"

    def __init__(self, session: HttpClient, url: str, *, timeout_s: float) -> None:
        self._session = session
        self._url = url
        self._timeout_s = timeout_s
        self.timeout_s = timeout_s + 1.0  # a backstop: our HTTP timeout fires first

    @classmethod
    def from_config(cls, config: AgentSettings, session: HttpClient) -> HealthProbeCollector | None:
        if not config.health.url:
            return None
        return cls(session, config.health.url, timeout_s=config.health.timeout_s)

    async def collect(self) -> list[Sample]:
        start = time.perf_counter()
        try:
            resp = await self._session.request(
                "GET", self._url, timeout_s=self._timeout_s, max_body=_BODY_LIMIT, over="truncate"
            )
            status = resp.status
        except (HttpError, OSError, TimeoutError) as exc:
            latency = time.perf_counter() - start
            message = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            raise CollectorError(
                f"health probe of {self._url} failed: {message}",
                samples=_samples(0.0, latency, 0),
            ) from exc
        latency = time.perf_counter() - start
        return _samples(1.0 if 200 <= status < 300 else 0.0, latency, status)


def _samples(up: float, latency: float, status: int) -> list[Sample]:
    return [
        Sample("haetae_app_health_up", {}, up),
        Sample("haetae_app_health_latency_seconds", {}, latency),
        Sample("haetae_app_health_status_code", {}, float(status)),
    ]
