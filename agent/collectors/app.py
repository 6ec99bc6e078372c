"""Scrape the watched app's Prometheus endpoint; its samples are forwarded with their own names."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent.collectors.base import Collector, Sample, register
from agent.collectors.exposition import ExpositionParser
from agent.errors import CollectorError
from agent.http.client import HttpClient, HttpError

if TYPE_CHECKING:
    from agent.settings import AgentSettings

# Ask for the classic text format: OpenMetrics adds exemplars and `# EOF` we have no use for.
_ACCEPT = {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"}


class _ScrapeFailed(Exception):
    pass


@register
class AppScrapeCollector(Collector):
    name = "app"

    def __init__(self, session: HttpClient, url: str, *, timeout_s: float, max_bytes: int) -> None:
        self._session = session
        self._url = url
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._parser = ExpositionParser()
        # Our own HTTP timeout fires first and yields scrape_up 0; the runner's is a backstop.
        self.timeout_s = timeout_s + 1.0

    @classmethod
    def from_config(cls, config: AgentSettings, session: HttpClient) -> AppScrapeCollector | None:
        app = config.app
        if not app.metrics_url:
            return None
        return cls(session, app.metrics_url, timeout_s=app.timeout_s, max_bytes=app.max_bytes)

    async def collect(self) -> list[Sample]:
        start = time.perf_counter()
        try:
            body = await self._fetch()
            samples = self._parser.parse(body.decode("utf-8"), now=time.time())
        except (HttpError, OSError, TimeoutError, ValueError, _ScrapeFailed) as exc:
            elapsed = time.perf_counter() - start
            message = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            raise CollectorError(
                f"scrape of {self._url} failed: {message}",
                samples=[
                    Sample("haetae_app_scrape_up", {}, 0.0),
                    Sample("haetae_app_scrape_duration_seconds", {}, elapsed),
                ],
            ) from exc
        elapsed = time.perf_counter() - start
        count = float(len(samples))
        samples.append(Sample("haetae_app_scrape_up", {}, 1.0))
        samples.append(Sample("haetae_app_scrape_duration_seconds", {}, elapsed))
        samples.append(Sample("haetae_app_scrape_samples", {}, count))
        # Left out because the control plane would refuse them (over-long labels, odd times).
        refused = float(self._parser.refused)
        samples.append(Sample("haetae_app_scrape_samples_refused", {}, refused))
        return samples

    async def _fetch(self) -> bytes:
        # The cap is counted after decompression, so a small gzip bomb is refused as well.
        resp = await self._session.request(
            "GET", self._url, headers=_ACCEPT, timeout_s=self._timeout_s, max_body=self._max_bytes
        )
        if resp.status != 200:
            raise _ScrapeFailed(f"HTTP {resp.status}")
        return resp.body
