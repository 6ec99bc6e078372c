"""One analysis per content hash across all workers: a Redis lease with an owner token.

The holder analyses and stores the result; the others wait for the result to appear (or for the
lease to lapse, when the holder died, and then take over).
"""

from __future__ import annotations

import logging
import secrets

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from link_analyzer.keys import CacheKeys

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class AnalysisLease:
    """With Redis unreachable the lease degrades to "granted": a duplicate model call costs
    less than no analysis at all."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        keys: CacheKeys | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys or CacheKeys()
        self.log = logger or logging.getLogger("haetae.link_analyzer.singleflight")
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, content_hash: str, ttl_s: float) -> str | None:
        """A token when we now own the lease, None when someone else does."""
        token = secrets.token_hex(8)
        try:
            got = await self.redis.set(
                self.keys.lease(content_hash), token, nx=True, px=max(1, int(ttl_s * 1000))
            )
        except RedisError as exc:
            self.log.warning("analysis lease unavailable, analysing without it: %s", exc)
            return token
        return token if got else None

    async def held(self, content_hash: str) -> bool:
        try:
            return bool(await self.redis.exists(self.keys.lease(content_hash)))
        except RedisError:
            return False

    async def release(self, content_hash: str, token: str) -> None:
        try:
            await self._release(keys=[self.keys.lease(content_hash)], args=[token])
        except RedisError as exc:
            # The lease expires on its own.
            self.log.warning("releasing the analysis lease failed: %s", exc)
