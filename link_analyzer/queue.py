"""A Redis job queue that loses nothing: priorities, leases with heartbeats, retries, dead letters.

A dequeued job is *leased* to one worker for ``lease_s``; the worker renews the lease by
heartbeat while it runs. Any worker's dequeue first reclaims jobs whose lease lapsed (their worker
died), so such a job runs again within about ``lease_s`` plus one poll, not minutes. Every state
change is one Lua script, and the lease token makes a late worker's ``complete`` or ``fail`` a
no-op once its job was reclaimed. Times come from the Redis server clock (``TIME``), so workers
with skewed clocks agree.

States: queued -> active -> done | retrying -> queued ... | dead (with a reason).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from link_analyzer.keys import QueueKeys
from link_analyzer.queue_scripts import COMPLETE, DEQUEUE, ENQUEUE, FAIL, HEARTBEAT


class JobStatus(StrEnum):
    QUEUED = "queued"
    ACTIVE = "active"
    RETRYING = "retrying"
    DONE = "done"
    DEAD = "dead"


TERMINAL = frozenset({JobStatus.DONE, JobStatus.DEAD})


class Priority(IntEnum):
    HIGH = 0
    NORMAL = 1
    LOW = 2


class QueueError(Exception):
    """The queue's store failed. Unlike the cache, a queue failure is raised, never hidden."""


@dataclass(frozen=True)
class Job:
    id: str
    url_key: str
    payload: dict[str, Any]
    priority: Priority
    attempt: int
    max_attempts: int
    timeout_s: float
    token: str


@dataclass(frozen=True)
class JobView:
    """What the status API shows."""

    id: str
    status: JobStatus
    url_key: str
    priority: Priority
    attempts: int
    max_attempts: int
    created_ms: int
    updated_ms: int
    result: dict[str, Any] | None
    error: str | None
    worker: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.id,
            "status": self.status.value,
            "url_hash": self.url_key,
            "priority": self.priority.name.lower(),
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
            "result": self.result,
            "error": self.error,
        }


@dataclass(frozen=True)
class Enqueued:
    job_id: str
    created: bool  # False: an unfinished job for the same URL key already existed


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits base * 2**(n-1), capped, scaled by a
    random factor in [1 - jitter, 1] so that a burst of failures does not retry in lockstep."""

    base_s: float = 1.0
    max_s: float = 60.0
    jitter: float = 0.5

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        raw = min(self.max_s, self.base_s * 2 ** max(0, attempt - 1))
        return raw * (1.0 - self.jitter * rand())


class Queue:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        keys: QueueKeys | None = None,
        lease_s: float = 10.0,
        backoff: Backoff | None = None,
        result_ttl_s: float = 86400.0,
        dead_ttl_s: float = 7 * 86400.0,
        dedup_ttl_s: float = 3600.0,
    ) -> None:
        self.redis = redis
        self.keys = keys or QueueKeys()
        self.lease_s = lease_s
        self.backoff = backoff or Backoff()
        self._result_ttl_ms = int(result_ttl_s * 1000)
        self._dead_ttl_ms = int(dead_ttl_s * 1000)
        self._dedup_ttl_ms = int(dedup_ttl_s * 1000)
        self._enqueue = redis.register_script(ENQUEUE)
        self._dequeue = redis.register_script(DEQUEUE)
        self._heartbeat = redis.register_script(HEARTBEAT)
        self._complete = redis.register_script(COMPLETE)
        self._fail = redis.register_script(FAIL)

    async def enqueue(
        self,
        url_key: str,
        payload: dict[str, Any],
        *,
        priority: Priority = Priority.NORMAL,
        max_attempts: int = 3,
        timeout_s: float = 60.0,
    ) -> Enqueued:
        """Idempotent by ``url_key``: while a job for it is unfinished, that job is returned."""
        job_id = secrets.token_hex(12)
        k = self.keys
        try:
            got = await self._enqueue(
                keys=[k.dedup(url_key), k.job(job_id), k.queued, k.wake, k.seq],
                args=[
                    job_id,
                    url_key,
                    orjson.dumps(payload),
                    int(priority),
                    max_attempts,
                    timeout_s,
                    self._dedup_ttl_ms,
                    k.job_prefix,
                ],
            )
        except RedisError as exc:
            raise QueueError(f"enqueue failed: {exc}") from exc
        return Enqueued(_s(got[0]), bool(int(got[1])))

    async def dequeue(self, worker_id: str) -> Job | None:
        jobs = await self.dequeue_many(worker_id, 1)
        return jobs[0] if jobs else None

    async def dequeue_many(self, worker_id: str, count: int) -> list[Job]:
        """Lease up to ``count`` jobs in one round trip (fewer, or none, when fewer wait)."""
        token = secrets.token_hex(8)
        k = self.keys
        try:
            raw = await self._dequeue(
                keys=[k.queued, k.delayed, k.active, k.dead, k.seq],
                args=[
                    k.job_prefix,
                    k.dedup_prefix,
                    worker_id,
                    token,
                    int(self.lease_s * 1000),
                    self._dead_ttl_ms,
                    max(1, count),
                ],
            )
        except RedisError as exc:
            raise QueueError(f"dequeue failed: {exc}") from exc
        return [_job([_s(v) for v in row], token) for row in raw or ()]

    async def heartbeat(self, job: Job) -> bool:
        """Extend the lease; False when the job is no longer ours (reclaimed meanwhile)."""
        got = await self._heartbeat(
            keys=[self.keys.active, self.keys.job(job.id)],
            args=[job.id, job.token, int(self.lease_s * 1000)],
        )
        return bool(got)

    async def complete(self, job: Job, result: dict[str, Any]) -> bool:
        k = self.keys
        try:
            got = await self._complete(
                keys=[k.active, k.job(job.id), k.dedup(job.url_key)],
                args=[job.id, job.token, orjson.dumps(result), self._result_ttl_ms],
            )
        except RedisError as exc:
            raise QueueError(f"complete failed: {exc}") from exc
        return bool(got)

    async def fail(self, job: Job, error: str, *, retryable: bool) -> JobStatus | None:
        """Retry later (with backoff) or dead-letter; None when the lease was already lost."""
        k = self.keys
        delay_ms = int(self.backoff.delay(job.attempt) * 1000)
        try:
            got = await self._fail(
                keys=[k.active, k.delayed, k.dead, k.job(job.id), k.dedup(job.url_key)],
                args=[job.id, job.token, error[:2000], int(retryable), delay_ms, self._dead_ttl_ms],
            )
        except RedisError as exc:
            raise QueueError(f"fail failed: {exc}") from exc
        return JobStatus(_s(got)) if got else None

    async def status(self, job_id: str) -> JobView | None:
        try:
            raw = await self.redis.hgetall(self.keys.job(job_id))
        except RedisError as exc:
            raise QueueError(f"status lookup failed: {exc}") from exc
        if not raw:
            return None
        f = {_s(a): _s(b) for a, b in raw.items()}
        return JobView(
            id=f["id"],
            status=JobStatus(f["status"]),
            url_key=f["url_key"],
            priority=Priority(int(f["priority"])),
            attempts=int(f["attempts"]),
            max_attempts=int(f["max_attempts"]),
            created_ms=int(f["created_ms"]),
            updated_ms=int(f["updated_ms"]),
            result=orjson.loads(f["result"]) if f.get("result") else None,
            error=f.get("error") or None,
            worker=f.get("worker"),
        )

    async def dead_letters(self, limit: int = 100) -> list[str]:
        return [_s(x) for x in await self.redis.lrange(self.keys.dead, -limit, -1)]

    async def depth(self) -> dict[str, int]:
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(k.queued)
            pipe.zcard(k.delayed)
            pipe.zcard(k.active)
            pipe.llen(k.dead)
            queued, delayed, active, dead = await pipe.execute()
        return {"queued": queued, "retrying": delayed, "active": active, "dead": dead}

    async def wait_for_work(self, timeout_s: float) -> None:
        """Block until an enqueue signals or ``timeout_s`` passes (reclaims need the poll)."""
        await self.redis.blpop([self.keys.wake], timeout=timeout_s)


def _job(row: list[str], token: str) -> Job:
    """A job from a DEQUEUE row: id, url key, payload, priority, attempts, max attempts,
    timeout s."""
    job_id, url_key, payload, priority, attempts, max_attempts, timeout_s = row
    return Job(
        id=job_id,
        url_key=url_key,
        payload=orjson.loads(payload),
        priority=Priority(int(priority)),
        attempt=int(attempts),
        max_attempts=int(max_attempts),
        timeout_s=float(timeout_s),
        token=token,
    )


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
