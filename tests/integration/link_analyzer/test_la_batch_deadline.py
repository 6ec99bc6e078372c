"""A job waiting on a Gemini batch: not cut by queue.job_timeout_s (its lease kept by heartbeats,
the wait bounded by gemini.batch_deadline_s), and batches bounded by the worker's slots."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
from la_fakes import FakeGemini, Origin, analyzer_config

from link_analyzer.keys import CacheKeys
from link_analyzer.queue import Job, JobStatus, Priority, Queue
from link_analyzer.service import LinkAnalyzerService
from link_analyzer.urls import canonicalize
from link_analyzer.worker import Worker, current_job


def batch_config(fake: FakeGemini, *, queue: dict[str, Any], **gemini: Any) -> Any:
    return analyzer_config(
        fake.base_url,
        gemini={
            "api_key": "test-key",
            "base_url": fake.base_url,
            "batch_max_wait_s": 0.05,
            "batch_poll_s": 0.05,
            **gemini,
        },
        queue={"backoff_base_s": 0.05, "backoff_max_s": 0.2, **queue},
    )


async def wait_final(q: Queue, job_id: str, within_s: float = 15) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        view = await q.status(job_id)
        if view is not None and view.status in {JobStatus.DONE, JobStatus.DEAD}:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished")


async def run_low_jobs(
    svc: LinkAnalyzerService, urls: list[str], *, concurrency: int = 4, max_attempts: int = 3
) -> list[Any]:
    q = svc.config.queue
    jobs = [
        await svc.queue.enqueue(
            canonicalize(u).key,
            {"url": u},
            priority=Priority.LOW,
            max_attempts=max_attempts,
            timeout_s=q.job_timeout_s,
        )
        for u in urls
    ]
    stop = asyncio.Event()
    worker = Worker(svc.queue, svc.handle, concurrency=concurrency, poll_s=0.05)
    task = asyncio.create_task(worker.run(stop, grace_s=1))
    try:
        return [await wait_final(svc.queue, j.job_id) for j in jobs]
    finally:
        stop.set()
        await task


async def test_waiting_on_a_batch_outlives_the_job_timeout(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    # The batch answers after ~3 s of polls; the job's own timeout is 1 s and its queue
    # lease 1 s: without the extension it would time out, and without heartbeats the lease
    # would lapse and the job be reclaimed (run twice).
    fake_gemini.polls_before_done = 60
    cfg = batch_config(
        fake_gemini, queue={"job_timeout_s": 1.0, "lease_s": 1.0}, batch_deadline_s=30
    )
    async with LinkAnalyzerService(cfg, redis_client) as svc:
        started = time.monotonic()
        [view] = await run_low_jobs(svc, [origin.url("/article")])
        took = time.monotonic() - started
    assert view.status == JobStatus.DONE, view
    assert view.attempts == 1 and view.result["ai"]["batch"] is True
    assert took > 2.5  # it really waited past its job timeout and its lease
    assert len(fake_gemini.batches) == 1  # one batch: no retry, no second submission


async def test_the_batch_deadline_bounds_the_wait(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    fake_gemini.polls_before_done = 10_000  # never done
    cfg = batch_config(
        fake_gemini, queue={"job_timeout_s": 1.0, "lease_s": 1.0}, batch_deadline_s=1.5
    )
    async with LinkAnalyzerService(cfg, redis_client) as svc:
        [view] = await run_low_jobs(svc, [origin.url("/article")], max_attempts=1)
    assert view.status == JobStatus.DEAD
    assert "not done within 1.5 s" in view.error, view.error


async def test_a_batch_goes_once_every_worker_slot_waits_on_it(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    # max_wait_s is long: the batch is submitted early only because no further item can come
    # (all 3 slots of the worker hold jobs waiting on it).
    cfg = batch_config(fake_gemini, queue={"job_timeout_s": 30}, batch_max_wait_s=20)
    urls = [origin.url("/article"), origin.url("/watch"), origin.url("/player")]
    async with LinkAnalyzerService(cfg, redis_client) as svc:
        started = time.monotonic()
        views = await run_low_jobs(svc, urls, concurrency=3)
        took = time.monotonic() - started
        waiting = svc.metrics.registry.get_sample_value("haetae_link_batch_waiting_jobs")
    assert [v.status for v in views] == [JobStatus.DONE] * 3, views
    assert took < 10
    assert [len(v) for v in fake_gemini.batches.values()] == [3]
    assert waiting == 0


async def test_deadline_extension_gives_back_the_time_left() -> None:
    seen: dict[str, float] = {}

    class NoQueue:
        lease_s = 10.0

    async def handler(job: Job) -> dict[str, Any]:
        ctx = current_job()
        assert ctx is not None and ctx.job is job
        loop = asyncio.get_running_loop()
        before = ctx.timeout.when()
        assert before is not None
        with ctx.deadline_extended(5.0):
            seen["inside"] = (ctx.timeout.when() or 0) - loop.time()
            await asyncio.sleep(0.4)  # longer than the job's 0.2 s timeout
        seen["after"] = (ctx.timeout.when() or 0) - loop.time()
        return {}

    worker = Worker(NoQueue(), handler)  # type: ignore[arg-type]
    job = Job("j1", "k", {}, Priority.LOW, 1, 1, 0.2, "token")
    kind, _ = await worker._call(job)
    assert kind == "ok"
    assert 4.5 < seen["inside"] <= 5.0
    assert 0.05 < seen["after"] <= 0.2
    assert current_job() is None


async def test_a_batch_holder_keeps_a_short_lease_renewed(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    # The content lease is the short one (gemini.timeout_s + fetch.total_timeout_s = 1 s), not
    # the batch deadline (30 s): renewed while the holder waits ~3 s, so a holder killed while
    # waiting would free it within 1 s.
    fake_gemini.polls_before_done = 60
    cfg = analyzer_config(
        fake_gemini.base_url,
        fetch={"allow_networks": ["127.0.0.0/8"], "total_timeout_s": 0.5},
        gemini={
            "api_key": "test-key",
            "base_url": fake_gemini.base_url,
            "timeout_s": 0.5,
            "batch_max_wait_s": 0.05,
            "batch_poll_s": 0.05,
            "batch_deadline_s": 30,
        },
        queue={"job_timeout_s": 1.0, "lease_s": 1.0, "backoff_base_s": 0.05},
    )
    seen: list[tuple[float, int]] = []

    async def watch() -> None:
        while True:
            async for key in redis_client.scan_iter(match=CacheKeys().lease("*")):
                seen.append((time.monotonic(), await redis_client.pttl(key)))
            await asyncio.sleep(0.05)

    async with LinkAnalyzerService(cfg, redis_client) as svc:
        watcher = asyncio.create_task(watch())
        try:
            [view] = await run_low_jobs(svc, [origin.url("/article")])
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    assert view.status == JobStatus.DONE, view
    assert view.attempts == 1 and view.result["ai"]["batch"] is True
    assert seen, "the lease was never seen"
    assert seen[-1][0] - seen[0][0] > 2.0  # held well past its 1 s TTL...
    assert all(ms <= 1000 for _, ms in seen)  # ...yet never set past it
