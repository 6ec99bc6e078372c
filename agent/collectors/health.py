"""Probe the watched app's health URL: up (2xx), latency and status code."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import aiohttp

from agent.collectors.base import Collector, Sample, register
from agent.errors import CollectorError

if TYPE_CHECKING:
    from agent.config import AgentConfig

# Read (and discard) at most this much of the body, so the connection can be reused.
_BODY_LIMIT = 64 * 1024


@register
class HealthProbeCollector(Collector):
    """An answer of any status is an observation (up is 0 for non-2xx); no answer at all
    (refused, timed out) is a failed collection that still reports up 0."""

    name = "health"

    def __init__(self, session: aiohttp.ClientSession, url: str, *, timeout_s: float) -> None:
        self._session = session
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.timeout_s = timeout_s + 1.0  # a backstop: our HTTP timeout fires first

    @classmethod
    def from_config(
        cls, config: AgentConfig, session: aiohttp.ClientSession
    ) -> HealthProbeCollector | None:
        if not config.health.url:
            return None
        return cls(session, config.health.url, timeout_s=config.health.timeout_s)

    async def collect(self) -> list[Sample]:
        start = time.perf_counter()
        try:
            async with self._session.get(self._url, timeout=self._timeout) as resp:
                status = resp.status
                await resp.content.read(_BODY_LIMIT)
        except (aiohttp.ClientError, TimeoutError) as exc:
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
