"""Everything the link analyzer needs, built from its config section and one Redis client.

Used by the control plane (routes; a cleanup context opens and closes it) and by workers
(``runner.py``). The address policy can be passed in: tests allow their loopback origins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from link_analyzer.cache import LayeredAnalysisCache
from link_analyzer.config import LinkAnalyzerConfig
from link_analyzer.fetch import Fetcher, FetchLimits
from link_analyzer.gemini import GeminiAnalyzer, GeminiSettings
from link_analyzer.gemini_batch import BatchSettings, GeminiBatcher
from link_analyzer.ledger import CostLedger, Prices
from link_analyzer.metrics import LinkAnalyzerMetrics
from link_analyzer.pipeline import LinkAnalyzer
from link_analyzer.queue import Backoff, Job, Priority, Queue
from link_analyzer.singleflight import AnalysisLease
from link_analyzer.ssrf import AddressPolicy


def gemini_settings(
    config: LinkAnalyzerConfig, env: Mapping[str, str] | None = None
) -> GeminiSettings | None:
    """None (AI stage disabled) when neither the config nor ``GEMINI_API_KEY`` has a key."""
    g = config.gemini
    env = os.environ if env is None else env
    key = g.api_key.get_secret_value() if g.api_key else env.get("GEMINI_API_KEY", "")
    if not key.strip():
        return None
    return GeminiSettings(
        api_key=key.strip(),
        model=g.model,
        api_version=g.api_version,
        base_url=g.base_url,
        timeout_s=g.timeout_s,
    )


class LinkAnalyzerService:
    def __init__(
        self,
        config: LinkAnalyzerConfig,
        redis: aioredis.Redis,
        *,
        policy: AddressPolicy | None = None,
        env: Mapping[str, str] | None = None,
        metrics: LinkAnalyzerMetrics | None = None,
        cache_metrics: bool = False,
    ) -> None:
        self.config = config
        self.redis = redis
        self.metrics = metrics or LinkAnalyzerMetrics()
        f = config.fetch
        self.fetcher = Fetcher(
            FetchLimits(
                total_timeout_s=f.total_timeout_s,
                connect_timeout_s=f.connect_timeout_s,
                read_timeout_s=f.read_timeout_s,
                html_max_bytes=f.html_max_bytes,
                media_max_bytes=f.media_max_bytes,
                max_redirects=f.max_redirects,
                per_host_concurrency=f.per_host_concurrency,
                per_host_rate_per_s=f.per_host_rate_per_s,
                max_connections=f.max_connections,
            ),
            policy or AddressPolicy.allowing(f.allow_networks),
        )
        # cache_metrics: export the layered cache's stats into our registry (a worker's own;
        # the control plane's registry already has its own cache's, under the same names).
        self.cache = LayeredAnalysisCache.build(
            redis, config.cache, registry=self.metrics.registry if cache_metrics else None
        )
        settings = gemini_settings(config, env)
        self.gemini = GeminiAnalyzer(settings) if settings else None
        g = config.gemini
        self.batcher = (
            GeminiBatcher(
                self.gemini,
                BatchSettings(
                    max_items=g.batch_max_items,
                    max_wait_s=g.batch_max_wait_s,
                    poll_s=g.batch_poll_s,
                    deadline_s=g.batch_deadline_s,
                ),
                metrics=self.metrics,
            )
            if self.gemini is not None and g.batch_enabled
            else None
        )
        self.ledger = CostLedger(
            redis,
            Prices(g.input_per_mtok, g.output_per_mtok),
            batch_prices=Prices(g.batch_input_per_mtok, g.batch_output_per_mtok),
            pipeline=self.cache.commands,
        )
        q = config.queue
        self.queue = Queue(
            redis,
            lease_s=q.lease_s,
            backoff=Backoff(base_s=q.backoff_base_s, max_s=q.backoff_max_s),
            result_ttl_s=q.result_ttl_s,
        )
        self.analyzer = LinkAnalyzer(
            config,
            cache=self.cache,
            fetcher=self.fetcher,
            lease=AnalysisLease(redis, pipeline=self.cache.commands),
            gemini=self.gemini,
            batcher=self.batcher,
            ledger=self.ledger,
            metrics=self.metrics,
        )

    @property
    def ai_enabled(self) -> bool:
        return self.gemini is not None

    async def handle(self, job: Job) -> dict[str, Any]:
        """The worker's job handler."""
        return await self.analyzer.analyze(
            job.payload["url"],
            refresh=job.payload.get("refresh", False),
            batch=job.priority == Priority.LOW,
        )

    async def __aenter__(self) -> LinkAnalyzerService:
        await self.cache.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.cache.aclose()
        await self.fetcher.aclose()
        if self.batcher is not None:
            await self.batcher.aclose()
        if self.gemini is not None:
            await self.gemini.aclose()
