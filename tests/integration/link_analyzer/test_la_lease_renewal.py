"""The analysis lease stays short and its live holder renews it: a holder waiting long (on a
Gemini batch) keeps it past its TTL, a dead one (stopped renewing) frees it within the TTL."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from link_analyzer.singleflight import AnalysisLease

TTL = 0.3


async def _claim_within(lease: AnalysisLease, digest: str, limit_s: float) -> tuple[str, float]:
    started = time.monotonic()
    while True:
        token = await lease.acquire(digest, TTL)
        if token is not None:
            return token, time.monotonic() - started
        assert time.monotonic() - started < limit_s, "the lease was not freed in time"
        await asyncio.sleep(0.02)


async def test_live_holder_keeps_the_lease_past_its_ttl(redis_client: aioredis.Redis) -> None:
    a = AnalysisLease(redis_client)
    b = AnalysisLease(redis_client)
    token = await a.acquire("h", TTL)
    assert token is not None
    holding = asyncio.create_task(a.hold("h", token, TTL))
    try:
        for _ in range(10):  # 1 s: more than three TTLs
            await asyncio.sleep(0.1)
            assert await b.acquire("h", TTL) is None
        ttl_ms = await redis_client.pttl(a.keys.lease("h"))
        assert 0 < ttl_ms <= TTL * 1000  # renewed, never lengthened past the short TTL
    finally:
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
    await a.release("h", token)
    assert not await a.held("h")


async def test_dead_holder_frees_the_lease_within_its_ttl(redis_client: aioredis.Redis) -> None:
    a = AnalysisLease(redis_client)
    b = AnalysisLease(redis_client)
    token = await a.acquire("h", TTL)
    assert token is not None
    holding = asyncio.create_task(a.hold("h", token, TTL))
    await asyncio.sleep(0.5)  # past one TTL: still held while renewed
    assert await b.acquire("h", TTL) is None
    # The holder dies (SIGKILL): it stops renewing and never releases.
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)
    other, took = await _claim_within(b, "h", TTL + 0.5)
    assert took <= TTL + 0.2
    # The dead holder's renewal (were it to come back) is owner-checked: no effect.
    assert not await a.renew("h", token, 60)
    assert 0 < await redis_client.pttl(a.keys.lease("h")) <= TTL * 1000
    await a.release("h", token)  # not the owner: a no-op
    assert await a.held("h")
    await b.release("h", other)


async def test_renew_only_by_the_owner(redis_client: aioredis.Redis) -> None:
    a = AnalysisLease(redis_client)
    token = await a.acquire("h", TTL)
    assert token is not None
    assert not await a.renew("h", "not-the-token", 60)
    assert await redis_client.pttl(a.keys.lease("h")) <= TTL * 1000
    assert await a.renew("h", token, 5)
    assert await redis_client.pttl(a.keys.lease("h")) > TTL * 1000
    await a.release("h", token)
    assert not await a.renew("h", token, 5)  # released: nothing to renew
    assert not await a.held("h")
