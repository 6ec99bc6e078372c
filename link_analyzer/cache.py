"""The analysis cache on ``haetae.cache``: page metadata by URL key, AI analyses by content hash.

Both live in one :class:`~haetae.cache.LayeredCache` of their own (cache name ``link_analyzer``):
a bounded in-process L1 (W-TinyLFU) in front of the Redis L2 (auto-pipelined, under a circuit
breaker), each entry with its own TTL (metadata: the platform's, analysis: ``analysis_ttl_s``).
The keys are ``la:meta:{url_key}``, ``la:ai:{content_hash}`` and ``la:short:{url_key}`` (in
Redis: ``haetae:cache:v:la:...``).

Invalidation goes through the cache's durable invalidation stream (:class:`InvalidationBus`):
``invalidate(url_key)`` deletes from the L2, appends the keys to the stream and waits (bounded)
until every connected L1 -- this process's, the other control planes' and every ``haetae
worker``'s -- has dropped them. A metadata write that replaces a value (a forced refresh) is
published the same way (L1s only), so no process keeps serving the old page from its L1.

A cache failure degrades to a miss (logged and counted), never to a failed analysis. Hit/miss
counts per kind (metadata, analysis, short link) are summed fleet-wide in one Redis hash, written
off the lookup path by one flusher task; the layered stats (L1/L2/loader, breaker) are reported
per process and per connected node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from haetae.cache import (
    CachePolicy,
    CacheStats,
    InvalidationBus,
    InvalidationError,
    L1Cache,
    Layer,
    LayeredCache,
    Outcome,
    RedisL2,
    serde,
)
from haetae.cache import keys as ck
from haetae.resilience import BreakerConfig, CircuitBreaker
from link_analyzer.config import CacheConfig
from link_analyzer.keys import CacheKeys
from link_analyzer.rediscmd import Commands, commands_for

CACHE_NAME = "link_analyzer"
NAMESPACE = "la"
_LAYERS = ("metadata", "analysis", "short_link")
# The invalidation stream is shared with the control plane's cache: trim it as that one does.
_STREAM_MAXLEN = 100_000
# The URL keys whose results were stored last, kept for warm-ups (``recent_keys``).
RECENT_MAX = 1_000
# Metadata keys this process just looked up and missed: a write to one of them fills a gap
# (no L1 elsewhere can hold it); a write to any other key replaces a value and is published.
_MISSED_MAX = 10_000


def metadata_key(url_key: str) -> str:
    return f"{NAMESPACE}:meta:{url_key}"


def analysis_key(content_hash: str) -> str:
    return f"{NAMESPACE}:ai:{content_hash}"


def short_link_key(url_key: str) -> str:
    return f"{NAMESPACE}:short:{url_key}"


class AnalysisCache(Protocol):
    async def get_metadata(self, url_key: str) -> dict[str, Any] | None: ...
    async def put_metadata(self, url_key: str, page: dict[str, Any], ttl_s: float) -> None: ...
    async def get_analysis(self, content_hash: str) -> dict[str, Any] | None: ...
    async def put_analysis(
        self, content_hash: str, value: dict[str, Any], ttl_s: float
    ) -> None: ...
    async def get_short_link(self, url_key: str) -> str | None: ...
    async def put_short_link(self, url_key: str, target: str, ttl_s: float) -> None: ...
    async def invalidate(self, url_key: str) -> bool: ...
    async def stats(self) -> dict[str, Any]: ...


def follower_client(redis: Any) -> aioredis.Redis | None:
    """A client of its own for the invalidation follower (its blocking reads stay out of the
    shared pool, and need a socket timeout above the 500 ms block); None for a cluster client."""
    pool = getattr(redis, "connection_pool", None)
    if pool is None or not hasattr(pool, "connection_kwargs"):
        return None
    kwargs = dict(pool.connection_kwargs)
    kwargs["socket_timeout"] = max(5.0, kwargs.get("socket_timeout") or 0.0)
    return aioredis.Redis.from_pool(
        aioredis.ConnectionPool(connection_class=pool.connection_class, max_connections=4, **kwargs)
    )


class LayeredAnalysisCache:
    def __init__(
        self,
        cache: LayeredCache,
        redis: aioredis.Redis,
        *,
        bus: InvalidationBus | None = None,
        invalidate_timeout_s: float = 2.0,
        keys: CacheKeys | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.cache = cache
        self.bus = bus
        self.redis = redis
        self.invalidate_timeout_s = invalidate_timeout_s
        self.keys = keys or CacheKeys()
        self.log = logger or logging.getLogger("haetae.link_analyzer.cache")
        self._errors = 0
        self._missed: OrderedDict[str, None] = OrderedDict()
        # Hit/miss counts waiting to be written: a lookup only bumps these; one flusher task
        # sends whatever has gathered as one pipeline, again and again until nothing is left,
        # so at most one counter round trip is in flight, off every lookup's path.
        self._pending: Counter[str] = Counter()
        self._flusher: asyncio.Task[None] | None = None
        self._started = False

    @classmethod
    def build(
        cls,
        redis: aioredis.Redis,
        config: CacheConfig | None = None,
        *,
        registry: Any = None,
        follow: bool = True,
    ) -> LayeredAnalysisCache:
        """The L1, the L2 on ``redis`` and (``follow``) an invalidation follower.

        ``registry``: export the layered stats as Prometheus metrics there (only where no other
        cache exports into the same registry: the metric names are shared by every cache)."""
        cfg = config or CacheConfig()
        timeout_s = cfg.l2_timeout_ms / 1000
        breaker = CircuitBreaker(
            f"{CACHE_NAME}-cache-l2",
            BreakerConfig(
                timeout_s=timeout_s,
                slow_call_duration_s=timeout_s / 2,
                slow_call_rate_threshold=1.0,
                wait_in_open_s=1.0,
            ),
        )
        # TTLs are per entry; nothing is served past its TTL (no stale window), and a miss is
        # not remembered (the pipeline fills the gap itself).
        policy = CachePolicy(ttl_s=cfg.analysis_ttl_s, stale_ttl_s=0.0, negative_ttl_s=0.0)
        layered = LayeredCache(
            L1Cache(cfg.l1_max_entries, cfg.l1_max_bytes),
            RedisL2(redis),
            policy=policy,
            breaker=breaker,
            stats=CacheStats(CACHE_NAME, registry),
        )
        bus = None
        follower = follower_client(redis) if follow else None
        if follower is not None:
            bus = InvalidationBus(follower, layered, maxlen=_STREAM_MAXLEN)
        return cls(layered, redis, bus=bus, invalidate_timeout_s=cfg.invalidate_timeout_s)

    async def start(self) -> None:
        """Follow the invalidation stream (without it the L1 would miss other processes'
        invalidations); returns once positioned, or after 2 s if Redis is unreachable."""
        if self.bus is not None and not self._started:
            self._started = True
            await self.bus.start()

    async def aclose(self) -> None:
        """Write the counts still pending, stop following (call before closing Redis)."""
        await self.flush()
        if self.bus is not None:
            if self._started:
                await self.bus.stop()
            await self.bus.client.aclose()
        await self.cache.aclose()
        if self.cache.l2 is not None:
            await self.cache.l2.pipeline.aclose()

    @property
    def commands(self) -> Commands | None:
        """The L2's auto-pipeline, for the pipeline's own keys (lease, ledger: ``rediscmd``)."""
        l2 = self.cache.l2
        # A cluster client keeps redis-py's routing (as before); ours is the lean connection.
        return l2.pipeline if l2 is not None and not l2.is_cluster else None

    @property
    def errors(self) -> int:
        """Cache failures seen by this process (each one was served as a miss)."""
        return self._errors + self.cache.stats.counts[Layer.L2, Outcome.ERROR]

    # -- the pipeline's interface --------------------------------------------------------------
    async def get_metadata(self, url_key: str) -> dict[str, Any] | None:
        key = metadata_key(url_key)
        value = await self._get("metadata", key)
        if value is None:
            self._missed[key] = None
            if len(self._missed) > _MISSED_MAX:
                self._missed.popitem(last=False)
        return value if isinstance(value, dict) else None

    async def put_metadata(self, url_key: str, page: dict[str, Any], ttl_s: float) -> None:
        key = metadata_key(url_key)
        replaced = key not in self._missed
        self._missed.pop(key, None)
        await asyncio.gather(self.cache.set(key, page, ttl_s=ttl_s), self._remember(url_key))
        if replaced and self.bus is not None:
            # Not a gap just found empty: a replacement (refresh). Other L1s drop their copy.
            try:
                await self.bus.invalidate([key], layers=("l1",))
            except InvalidationError as exc:
                self._failed("publish refresh", exc)

    async def get_analysis(self, content_hash: str) -> dict[str, Any] | None:
        value = await self._get("analysis", analysis_key(content_hash))
        return value if isinstance(value, dict) else None

    def analysis_l2_key(self, content_hash: str) -> str | None:
        """The Redis key holding this analysis (for the lease's one-step check), if any."""
        l2 = self.cache.l2
        # On a cluster the lease and the answer may sit in different slots (no one script).
        if l2 is None or l2.is_cluster:
            return None
        return ck.value_key(analysis_key(content_hash))

    async def put_analysis(self, content_hash: str, value: dict[str, Any], ttl_s: float) -> None:
        await self.cache.set(analysis_key(content_hash), value, ttl_s=ttl_s)

    async def get_short_link(self, url_key: str) -> str | None:
        value = await self._get("short_link", short_link_key(url_key))
        return value if isinstance(value, str) else None

    async def put_short_link(self, url_key: str, target: str, ttl_s: float) -> None:
        await self.cache.set(short_link_key(url_key), target, ttl_s=ttl_s)

    async def invalidate(self, url_key: str) -> bool:
        """Forget a URL in every process: its metadata, short link and the analysis of its
        content. True if anything was cached. Raises ``RedisError``/``InvalidationError``."""
        page = await self.get_metadata(url_key)
        keys = [metadata_key(url_key), short_link_key(url_key)]
        content_hash = (page or {}).get("content_hash")
        if isinstance(content_hash, str):
            keys.append(analysis_key(content_hash))
        found = any(k in self.cache.l1 for k in keys)
        try:
            if self.cache.l2 is not None:
                found = await self.cache.l2.delete(keys) > 0 or found
            if self.bus is not None:
                result = await self.bus.invalidate_and_wait(
                    keys, timeout_s=self.invalidate_timeout_s
                )
                if result is not None and result.pending:
                    self.log.warning(
                        "invalidation of %s not confirmed by %s within %g s",
                        url_key,
                        result.pending,
                        self.invalidate_timeout_s,
                    )
            else:
                self.cache.apply_invalidation(keys)
            await self.redis.hincrby(self.keys.stats, "invalidations", 1)
        except (RedisError, InvalidationError) as exc:
            self._failed("invalidate", exc)
            raise
        return found

    async def stats(self) -> dict[str, Any]:
        await self.flush()
        try:
            raw = await self.redis.hgetall(self.keys.stats)
        except RedisError as exc:
            self._failed("stats", exc)
            raw = {}
        counts = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
        layers: dict[str, Any] = {}
        for layer in _LAYERS:
            hits, misses = counts.get(f"{layer}_hits", 0), counts.get(f"{layer}_misses", 0)
            total = hits + misses
            layers[layer] = {
                "hits": hits,
                "misses": misses,
                "hit_rate": round(hits / total, 4) if total else None,
            }
        nodes: dict[str, Any] = {}
        if self.bus is not None:
            try:
                nodes = {
                    node: snap
                    for node, snap in (await self.bus.node_stats()).items()
                    if snap.get("cache") == CACHE_NAME
                }
            except RedisError as exc:
                self._failed("node stats", exc)
        return {
            "backend": "haetae.cache",
            # Fleet-wide, per kind of entry.
            "layers": layers,
            "invalidations": counts.get("invalidations", 0),
            # This process's L1/L2/loader counters, and every connected process's.
            "layered": self.cache.stats.snapshot(),
            "node": self.bus.node_id if self.bus is not None else None,
            "following_invalidations": bool(self.bus is not None and self.bus.connected),
            "nodes": nodes,
            "errors_this_process": self.errors,
        }

    # -- warm-up sources (registered with the control plane's cache warmer) --------------------
    async def recent_keys(self, limit: int) -> list[str]:
        """The cache keys of the ``limit`` URLs analysed last that L2 still holds: metadata,
        short link, and the analysis of the page's content."""
        url_keys: list[bytes | str] = await self.redis.zrevrange(
            self.keys.recent, 0, max(0, limit - 1)
        )  # type: ignore[assignment]
        names = [k.decode() if isinstance(k, bytes) else k for k in url_keys]
        l2 = self.cache.l2
        if l2 is None or not names:
            return []
        candidates = [key for u in names for key in (metadata_key(u), short_link_key(u))]
        keys: list[str] = []
        for key, raw in zip(candidates, await l2.mget(candidates), strict=True):
            rec = serde.decode(raw) if raw else None
            if rec is None or rec.negative:
                continue
            keys.append(key)
            content_hash = rec.value.get("content_hash") if isinstance(rec.value, dict) else None
            if isinstance(content_hash, str):
                keys.append(analysis_key(content_hash))
        return keys[:limit]

    async def hot_keys(self, limit: int) -> list[str]:
        """This process's most looked-up keys (the fleet's come from the nodes' heartbeats)."""
        return [key for key, _ in self.cache.stats.hot.top(NAMESPACE, limit)]

    async def _remember(self, url_key: str) -> None:
        cmds = commands_for(self.redis, self.commands)
        try:
            await asyncio.gather(
                cmds.execute("ZADD", self.keys.recent, time.time(), url_key),
                cmds.execute("ZREMRANGEBYRANK", self.keys.recent, 0, -RECENT_MAX - 1),
            )
        except Exception as exc:  # best effort: a warm-up source, never a failed analysis
            self._failed("remember recent", exc)

    # -- internals -----------------------------------------------------------------------------
    async def _get(self, layer: str, key: str) -> Any:
        try:
            value = await self.cache.get(key)
        except Exception as exc:  # the layered cache degrades L2 trouble itself; belt and braces
            self._failed(f"get {layer}", exc)
            return None
        self._count(f"{layer}_hits" if value is not None else f"{layer}_misses")
        return value

    def _count(self, field: str) -> None:
        self._pending[field] += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while self._pending:
            # One tick's grace, so the lookups finishing together share the round trip.
            await asyncio.sleep(0)
            await self._send_counts()

    async def flush(self) -> None:
        """Wait until every count taken so far is in Redis (stats readers and shutdown)."""
        if self._flusher is not None:
            await self._flusher
        await self._send_counts()

    async def _send_counts(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for field, n in pending.items():
                    pipe.hincrby(self.keys.stats, field, n)
                await pipe.execute()
        except Exception as exc:
            # Counters are best effort: lost counts never fail or slow an analysis. Not only
            # RedisError: this runs in its own task, where redis-py's connection races surface
            # as other errors, and nothing else would see them.
            self._failed("count hits", exc)

    def _failed(self, what: str, exc: Exception) -> None:
        self._errors += 1
        self.log.warning("analysis cache %s failed: %s", what, exc)
