"""The analysis cache: page metadata by URL key, AI analyses by content hash, kept apart.

:class:`AnalysisCache` is the interface the pipeline uses. :class:`RedisAnalysisCache` implements
it on Redis directly for now; when ``haetae.cache`` (the multi-layer L1/L2 cache) lands, an
implementation on top of it replaces this one without touching the pipeline. A cache failure
degrades to a miss (logged and counted), never to a failed analysis.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from link_analyzer.keys import CacheKeys

_LAYERS = ("metadata", "analysis", "short_link")


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


class RedisAnalysisCache:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        keys: CacheKeys | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys or CacheKeys()
        self.log = logger or logging.getLogger("haetae.link_analyzer.cache")
        self.errors = 0
        # Hit/miss counts waiting to be written: a lookup only bumps these; one flusher task
        # sends whatever has gathered as one pipeline, again and again until nothing is left,
        # so at most one counter round trip is in flight, off every lookup's path.
        self._pending: Counter[str] = Counter()
        self._flusher: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        """Write the counts still pending (call before closing the Redis client)."""
        await self.flush()

    async def get_metadata(self, url_key: str) -> dict[str, Any] | None:
        return await self._get_json("metadata", self.keys.metadata(url_key))

    async def put_metadata(self, url_key: str, page: dict[str, Any], ttl_s: float) -> None:
        await self._set("metadata", self.keys.metadata(url_key), orjson.dumps(page), ttl_s)

    async def get_analysis(self, content_hash: str) -> dict[str, Any] | None:
        return await self._get_json("analysis", self.keys.analysis(content_hash))

    async def put_analysis(self, content_hash: str, value: dict[str, Any], ttl_s: float) -> None:
        await self._set("analysis", self.keys.analysis(content_hash), orjson.dumps(value), ttl_s)

    async def get_short_link(self, url_key: str) -> str | None:
        raw = await self._get("short_link", self.keys.short_link(url_key))
        return raw.decode() if raw is not None else None

    async def put_short_link(self, url_key: str, target: str, ttl_s: float) -> None:
        await self._set("short_link", self.keys.short_link(url_key), target.encode(), ttl_s)

    async def invalidate(self, url_key: str) -> bool:
        """Forget a URL: its metadata and the analysis of its content. Idempotent; the two
        keys live in different cluster slots, so this is two deletes, not one script."""
        page = await self.get_metadata(url_key)
        keys = [self.keys.metadata(url_key), self.keys.short_link(url_key)]
        content_hash = (page or {}).get("content_hash")
        if isinstance(content_hash, str):
            keys.append(self.keys.analysis(content_hash))
        try:
            deleted = 0
            for key in keys:
                deleted += int(await self.redis.delete(key))
            await self.redis.hincrby(self.keys.stats, "invalidations", 1)
        except RedisError as exc:
            self._failed("invalidate", exc)
            raise
        return deleted > 0

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
        return {
            "backend": "redis",
            "layers": layers,
            "invalidations": counts.get("invalidations", 0),
            "errors_this_process": self.errors,
        }

    async def _get(self, layer: str, key: str) -> bytes | None:
        try:
            raw = await self.redis.get(key)
        except RedisError as exc:
            self._failed(f"get {layer}", exc)
            return None
        self._count(f"{layer}_hits" if raw is not None else f"{layer}_misses")
        return raw.encode() if isinstance(raw, str) else raw

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

    async def _get_json(self, layer: str, key: str) -> dict[str, Any] | None:
        raw = await self._get(layer, key)
        if raw is None:
            return None
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.log.warning("dropping a corrupt cache entry %s", key)
            return None
        return value if isinstance(value, dict) else None

    async def _set(self, layer: str, key: str, value: bytes, ttl_s: float) -> None:
        try:
            await self.redis.set(key, value, px=max(1, int(ttl_s * 1000)))
        except RedisError as exc:
            self._failed(f"set {layer}", exc)

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors += 1
        self.log.warning("analysis cache %s failed: %s", what, exc)
