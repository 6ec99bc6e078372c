"""The control plane's cache: a LayeredCache on the configured Redis, following the invalidation
stream, plus the warm-up jobs the admin API starts (``cache_ctx`` opens and closes it all).

The control plane reads nothing of its own through this cache yet: what it warms are the stored
namespaces that components mounted on it register (the link analyzer's ``la``, whose results
live in L2), and any loader a deployment adds with ``register_loader``.

The cache's lookup counters are also ingested as series of the agent id ``control-plane``
(``haetae_cache_requests_total{cache,layer,outcome}``, every ``SELF_REPORT_INTERVAL_S`` while they
change), the same series agents report for theirs, so alert rules read them alike."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from control_plane.appkeys import CACHE, CONFIG, INGESTOR, METRICS
from control_plane.ingest.decode import Report, Sample, labels_key
from haetae.cache import (
    CacheConfig,
    CachePolicy,
    CacheStats,
    CdnPurger,
    CloudflarePurger,
    InvalidationBus,
    L1Cache,
    LayeredCache,
    Loader,
    NginxPurger,
    RedisL2,
    client_from_url,
)
from haetae.cache.warmup import KeyLister, Warmer, WarmupJob
from haetae.resilience import BreakerConfig, CircuitBreaker

if TYPE_CHECKING:
    from control_plane.config import CdnConfig

log = logging.getLogger(__name__)

SELF_AGENT_ID = "control-plane"
SELF_REPORT_INTERVAL_S = 10.0
REQUESTS = "haetae_cache_requests_total"


class CacheService:
    def __init__(self, cache: LayeredCache, bus: InvalidationBus | None, config: CacheConfig):
        self.cache = cache
        self.bus = bus
        self.config = config
        # The L3, purged by POST /admin/cdn/purge and by invalidations naming layer l3.
        self.cdn: CdnPurger | None = None
        self.warmer = Warmer(cache, bus, concurrency=config.warmup_concurrency)

    @property
    def jobs(self) -> dict[str, WarmupJob]:
        return self.warmer.jobs

    def register_loader(self, namespace: str, loader: Loader) -> None:
        self.cache.register_loader(namespace, loader)

    def register_stored(
        self, namespace: str, *, hot: KeyLister | None = None, recent: KeyLister | None = None
    ) -> None:
        """A namespace whose values another component keeps in L2 (the link analyzer's):
        warm-ups copy them from there into every L1, with these sources of keys."""
        self.warmer.register_stored(namespace, hot=hot, recent=recent)

    def start_warmup(self, keys: list[str], source: str) -> WarmupJob:
        return self.warmer.start(keys, source)

    async def aclose(self) -> None:
        await self.warmer.aclose()
        if self.bus is not None:
            await self.bus.stop()
            await self.bus.client.aclose()
        await self.cache.aclose()
        if self.cdn is not None:
            await self.cdn.aclose()
        if self.cache.l2 is not None:
            await self.cache.l2.aclose()


def build_cache(
    cfg: CacheConfig, url: str | None, *, name: str, registry: Any = None
) -> CacheService:
    policy = CachePolicy(
        ttl_s=cfg.ttl_s, stale_ttl_s=cfg.stale_ttl_s, negative_ttl_s=cfg.negative_ttl_s
    )
    breaker = CircuitBreaker(
        f"{name}-cache-l2",
        BreakerConfig(timeout_s=cfg.l2_timeout_ms / 1000, wait_in_open_s=cfg.breaker_wait_s),
    )
    stats = CacheStats(name, registry, window_s=cfg.stats_window_s)
    l1 = L1Cache(cfg.l1_max_entries, cfg.l1_max_bytes)
    if url is None:
        return CacheService(LayeredCache(l1, None, policy=policy, stats=stats), None, cfg)
    # The stream follower blocks up to 500 ms per read: the socket timeout must exceed that.
    client = client_from_url(url, socket_timeout=5.0, socket_connect_timeout=1.0)
    cache = LayeredCache(l1, RedisL2(client), policy=policy, breaker=breaker, stats=stats)
    # The follower gets its own connections: its blocking reads stay out of the L2's pool.
    follower = client_from_url(url, socket_timeout=5.0, socket_connect_timeout=1.0)
    bus = InvalidationBus(follower, cache, maxlen=cfg.stream_maxlen)
    return CacheService(cache, bus, cfg)


def build_purger(cfg: CdnConfig) -> CdnPurger | None:
    if cfg.provider == "cloudflare":
        assert cfg.zone_id is not None and cfg.api_token is not None  # the config checks it
        return CloudflarePurger(
            cfg.zone_id,
            cfg.api_token.get_secret_value(),
            base_url=cfg.base_url,
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )
    if cfg.provider == "nginx":
        assert cfg.nginx_cache_dir is not None
        return NginxPurger(
            cfg.nginx_cache_dir, levels=cfg.nginx_cache_levels, key_format=cfg.nginx_cache_key
        )
    return None


def stats_samples(stats: CacheStats, ts: float) -> list[Sample]:
    """``haetae_cache_requests_total{cache,layer,outcome}`` as the Prometheus collector of
    haetae.cache.stats exports it (L1 hits and misses; every L2 and loader outcome)."""
    counts: list[tuple[str, str, int]] = []
    if stats.l1 is not None:
        counts += [("l1", "hit", stats.l1.hits), ("l1", "miss", stats.l1.misses)]
    counts += [(layer.value, outcome.value, n) for (layer, outcome), n in stats.counts.items()]
    samples = []
    for layer, outcome, n in counts:
        labels = {"cache": stats.name, "layer": layer, "outcome": outcome}
        samples.append(Sample(REQUESTS, labels, labels_key(labels), ts, float(n)))
    return samples


async def self_report(app: web.Application, interval_s: float = SELF_REPORT_INTERVAL_S) -> None:
    """Ingest this process's cache counters every ``interval_s`` while they change."""
    last: list[float] | None = None
    while True:
        await asyncio.sleep(interval_s)
        ingestor = app.get(INGESTOR)
        if ingestor is None:  # an app built without ingest (some tests)
            continue
        samples = stats_samples(app[CACHE].cache.stats, time.time())
        values = [s.value for s in samples]
        if values == last:
            continue
        report = Report(SELF_AGENT_ID, uuid.uuid4(), None, time.time(), samples)
        try:
            await ingestor.submit(report)
        except Exception as exc:  # ingest unavailable or overloaded: try again next time
            log.debug("self-report of cache stats failed: %r", exc)
            continue
        last = values


async def cache_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    cfg = config.cache
    url_secret = cfg.url or config.redis.url
    url = url_secret.get_secret_value() if url_secret is not None and cfg.enabled else None
    service = build_cache(cfg, url, name="control_plane", registry=app[METRICS].registry)
    service.cdn = build_purger(config.cdn)
    if service.bus is not None:
        await service.bus.start()
    app[CACHE] = service
    reporter = asyncio.get_running_loop().create_task(self_report(app))
    yield
    reporter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reporter
    with contextlib.suppress(Exception):
        await service.aclose()
