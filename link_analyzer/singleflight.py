"""One analysis per content hash across all workers: a Redis lease with an owner token.

The holder analyses and stores the result; the others wait for the result to appear (or for the
lease to lapse, when the holder died, and then take over).
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from link_analyzer.keys import CacheKeys
from link_analyzer.rediscmd import Commands, Script, commands_for

# The lease, unless the answer is already there (checked first, in the same atomic step: the
# holder writes its answer before releasing, so "no answer, lease free" means nobody finished).
_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# Extend the lease only while we still own it (a lapsed lease taken over stays the new owner's).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
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
        pipeline: Commands | None = None,
    ) -> None:
        """``pipeline``: send acquire/release through it (the analysis cache's auto-pipeline,
        ``rediscmd``) instead of one redis-py round trip each."""
        self.redis = redis
        self.keys = keys or CacheKeys()
        self.log = logger or logging.getLogger("haetae.link_analyzer.singleflight")
        self._cmds = commands_for(redis, pipeline)
        self._release = Script(_RELEASE)
        self._claim = Script(_CLAIM)
        self._renew = Script(_RENEW)

    async def acquire(self, content_hash: str, ttl_s: float) -> str | None:
        """A token when we now own the lease, None when someone else does."""
        token = secrets.token_hex(8)
        try:
            got = await self._cmds.execute(
                "SET", self.keys.lease(content_hash), token, "NX", "PX", max(1, int(ttl_s * 1000))
            )
        except RedisError as exc:
            self.log.warning("analysis lease unavailable, analysing without it: %s", exc)
            return token
        return token if got else None

    async def acquire_unless(
        self, content_hash: str, ttl_s: float, answer_key: str
    ) -> tuple[str | None, bool]:
        """One round trip for "is the answer there, else may I produce it": ``(None, True)``
        when ``answer_key`` (the Redis key of the stored answer) exists (no lease taken),
        ``(token, False)`` when we now own the lease and there is no answer, ``(None, False)``
        when someone else holds the lease."""
        token = secrets.token_hex(8)
        try:
            got = await self._claim(
                self._cmds,
                [self.keys.lease(content_hash), answer_key],
                [token, max(1, int(ttl_s * 1000))],
            )
        except RedisError as exc:
            self.log.warning("analysis lease unavailable, analysing without it: %s", exc)
            return token, False
        if got == 2:
            return None, True
        return (token if got == 1 else None), False

    async def held(self, content_hash: str) -> bool:
        try:
            return bool(await self.redis.exists(self.keys.lease(content_hash)))
        except RedisError:
            return False

    async def renew(self, content_hash: str, token: str, ttl_s: float) -> bool:
        """Extend our lease to ``ttl_s`` from now; False when it is no longer ours (lapsed, or
        taken over). A Redis error counts as "still ours": the holder keeps working and the
        lease lapses on its own if Redis stays away."""
        try:
            got = await self._renew(
                self._cmds, [self.keys.lease(content_hash)], [token, max(1, int(ttl_s * 1000))]
            )
        except RedisError as exc:
            self.log.warning("renewing the analysis lease failed: %s", exc)
            return True
        return bool(got)

    async def hold(self, content_hash: str, token: str, ttl_s: float) -> None:
        """Renew the lease every third of ``ttl_s`` until cancelled: a live holder (say one
        waiting on a Gemini batch for an hour) keeps it, a dead one loses it within ``ttl_s``."""
        every = max(0.01, ttl_s / 3)
        while True:
            await asyncio.sleep(every)
            if not await self.renew(content_hash, token, ttl_s):
                self.log.warning("analysis lease for %s lost while held", content_hash)
                return

    async def release(self, content_hash: str, token: str) -> None:
        try:
            await self._release(self._cmds, [self.keys.lease(content_hash)], [token])
        except RedisError as exc:
            # The lease expires on its own.
            self.log.warning("releasing the analysis lease failed: %s", exc)
