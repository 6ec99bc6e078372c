"""The Redis job queue against a real Redis: priorities, idempotence, retries, leases, kills."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from la_fakes import Origin, analyzer_config

from link_analyzer.errors import FetchRefused, FetchTimeout
from link_analyzer.queue import Backoff, Job, JobStatus, Priority, Queue
from link_analyzer.runner import run_worker
from link_analyzer.worker import Worker

FAST = Backoff(base_s=0.05, max_s=0.2, jitter=0.5)


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, grace_s=2))
    try:
        yield stop
    finally:
        stop.set()
        await task


async def wait_status(queue: Queue, job_id: str, want: set[JobStatus], within_s: float = 10) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        view = await queue.status(job_id)
        if view is not None and view.status in want:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} not in {want} after {within_s} s: {view}")


async def test_priorities_then_fifo(redis_client: aioredis.Redis) -> None:
    q = Queue(redis_client)
    low = await q.enqueue("k-low", {}, priority=Priority.LOW)
    n1 = await q.enqueue("k-n1", {})
    n2 = await q.enqueue("k-n2", {})
    high = await q.enqueue("k-high", {}, priority=Priority.HIGH)
    order = [(await q.dequeue("w")) for _ in range(4)]
    assert [j.id for j in order if j] == [high.job_id, n1.job_id, n2.job_id, low.job_id]
    assert await q.dequeue("w") is None
    assert (await q.depth())["active"] == 4


async def test_dequeue_many_leases_a_batch_and_skips_expired_hashes(
    redis_client: aioredis.Redis,
) -> None:
    q = Queue(redis_client)
    ids = [(await q.enqueue(f"k{i}", {"i": i}, priority=Priority.HIGH)).job_id for i in range(4)]
    await redis_client.delete(q.keys.job(ids[1]))  # its hash expired while it waited
    jobs = await q.dequeue_many("w", 3)
    assert [j.id for j in jobs] == [ids[0], ids[2], ids[3]]
    assert [j.payload["i"] for j in jobs] == [0, 2, 3]
    assert all(j.attempt == 1 and j.priority == Priority.HIGH for j in jobs)
    assert await q.dequeue_many("w", 3) == []
    assert all([await q.complete(j, {}) for j in jobs])


async def test_worker_drains_in_batches_without_heartbeats_for_quick_jobs(
    redis_client: aioredis.Redis,
) -> None:
    class CountingQueue(Queue):
        beats = 0

        async def heartbeat(self, job: Job) -> bool:
            self.beats += 1
            return await super().heartbeat(job)

    q = CountingQueue(redis_client, lease_s=3)
    ids = [(await q.enqueue(f"b{i}", {})).job_id for i in range(50)]

    async def noop(job: Job) -> dict[str, Any]:
        return {"id": job.id}

    worker = Worker(q, noop, concurrency=8)
    async with running(worker):
        for job_id in ids:
            view = await wait_status(q, job_id, {JobStatus.DONE})
            assert view.result == {"id": job_id}
    assert worker.processed == 50 and q.beats == 0


async def test_enqueue_is_idempotent_by_url_key(redis_client: aioredis.Redis) -> None:
    q = Queue(redis_client)
    first = await q.enqueue("same", {"url": "a"})
    again = await q.enqueue("same", {"url": "a"})
    assert first.created and not again.created and again.job_id == first.job_id
    job = await q.dequeue("w")
    assert job is not None
    assert (await q.enqueue("same", {})).job_id == first.job_id  # still active
    assert await q.complete(job, {"ok": True})
    fresh = await q.enqueue("same", {})
    assert fresh.created and fresh.job_id != first.job_id


async def test_retry_with_backoff_then_success(redis_client: aioredis.Redis) -> None:
    q = Queue(redis_client, backoff=FAST)
    calls: list[int] = []

    async def flaky(job: Job) -> dict[str, Any]:
        calls.append(job.attempt)
        if job.attempt < 3:
            raise FetchTimeout("https://e.com", "origin slow")
        return {"attempt": job.attempt}

    enq = await q.enqueue("k", {}, max_attempts=3)
    async with running(Worker(q, flaky, poll_s=0.05)):
        view = await wait_status(q, enq.job_id, {JobStatus.DONE})
    assert calls == [1, 2, 3]
    assert view.result == {"attempt": 3} and view.attempts == 3


async def test_permanent_error_and_exhausted_retries_dead_letter(
    redis_client: aioredis.Redis,
) -> None:
    q = Queue(redis_client, backoff=FAST)

    async def handler(job: Job) -> dict[str, Any]:
        if job.payload["mode"] == "refused":
            raise FetchRefused("http://10.0.0.1/", "private address")
        if job.payload["mode"] == "slow":
            await asyncio.sleep(10)
        raise RuntimeError("boom")

    refused = await q.enqueue("k1", {"mode": "refused"}, max_attempts=5)
    crashing = await q.enqueue("k2", {"mode": "crash"}, max_attempts=2)
    slow = await q.enqueue("k3", {"mode": "slow"}, max_attempts=2, timeout_s=0.2)
    async with running(Worker(q, handler, poll_s=0.05)):
        v1 = await wait_status(q, refused.job_id, {JobStatus.DEAD})
        v2 = await wait_status(q, crashing.job_id, {JobStatus.DEAD})
        v3 = await wait_status(q, slow.job_id, {JobStatus.DEAD})
    assert v1.attempts == 1 and v1.error.startswith("fetch-refused")
    assert v2.attempts == 2 and "RuntimeError: boom" in v2.error
    assert v3.attempts == 2 and v3.error.startswith("timeout")
    assert set(await q.dead_letters()) == {refused.job_id, crashing.job_id, slow.job_id}
    # A dead job no longer blocks a fresh enqueue of its URL.
    assert (await q.enqueue("k1", {"mode": "refused"})).created


async def test_heartbeats_keep_a_long_job_leased(redis_client: aioredis.Redis) -> None:
    q = Queue(redis_client, lease_s=0.5)
    runs: list[str] = []

    def handler_for(name: str) -> Callable[[Job], Awaitable[dict[str, Any]]]:
        async def handler(job: Job) -> dict[str, Any]:
            runs.append(name)
            await asyncio.sleep(1.5)  # three lease lengths
            return {"by": name}

        return handler

    enq = await q.enqueue("long", {})
    async with running(Worker(q, handler_for("a"), poll_s=0.05)):
        await wait_status(q, enq.job_id, {JobStatus.ACTIVE})
        async with running(Worker(q, handler_for("b"), poll_s=0.05)):
            view = await wait_status(q, enq.job_id, {JobStatus.DONE})
    assert runs == ["a"] and view.result == {"by": "a"} and view.attempts == 1


async def test_lost_lease_refuses_late_completion(redis_client: aioredis.Redis) -> None:
    q = Queue(redis_client, lease_s=0.2)
    await q.enqueue("k", {})
    stale = await q.dequeue("dead-worker")
    assert stale is not None
    await asyncio.sleep(0.3)
    fresh = await q.dequeue("other")  # reclaims the lapsed lease, runs it again
    assert fresh is not None and fresh.id == stale.id and fresh.attempt == 2
    reclaimed = await q.status(fresh.id)
    assert reclaimed is not None and reclaimed.worker == "other"
    assert "worker dead-worker stopped heartbeating (attempt 1)" in (reclaimed.error or "")
    assert not await q.complete(stale, {"by": "stale"})
    assert not await q.heartbeat(stale)
    assert await q.complete(fresh, {"by": "fresh"})
    view = await q.status(fresh.id)
    assert view is not None and view.result == {"by": "fresh"}


async def test_worker_killed_mid_job_completes_elsewhere(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    """SIGKILL a worker process while it runs a job: another worker finishes it within
    seconds of the lease lapsing, exactly once more, and nothing is lost."""
    lease_s = 1.0
    q = Queue(redis_client, lease_s=lease_s)
    script = Path(__file__).with_name("queue_worker_proc.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        redis_url,
        "victim",
        str(lease_s),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).strip() == b"ready"
        enq = await q.enqueue("kill-me", {"stall_first": True})
        others = [await q.enqueue(f"bystander-{i}", {}) for i in range(5)]
        started = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert started.strip() == f"started {enq.job_id}".encode()
        view = await q.status(enq.job_id)
        assert view is not None and view.status is JobStatus.ACTIVE and view.worker == "victim"
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await proc.wait()

        async def survivor(job: Job) -> dict[str, Any]:
            return {"worker": "survivor", "attempt": job.attempt}

        async with running(Worker(q, survivor, worker_id="survivor", poll_s=0.1)):
            done = await wait_status(q, enq.job_id, {JobStatus.DONE}, within_s=15)
            recovered_after = time.monotonic() - killed_at
            for other in others:
                await wait_status(q, other.job_id, {JobStatus.DONE})
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert done.result == {"worker": "survivor", "attempt": 2}
    assert done.attempts == 2 and done.worker == "survivor" and done.error is None
    # Generous bound (the lease is 1 s): arq needs minutes, SAQ never re-runs it.
    assert recovered_after < 10
    assert await q.dead_letters() == []


@pytest.mark.parametrize("priority", list(Priority))
async def test_status_view_shape(redis_client: aioredis.Redis, priority: Priority) -> None:
    q = Queue(redis_client)
    enq = await q.enqueue("shape", {"url": "x"}, priority=priority)
    view = await q.status(enq.job_id)
    assert view is not None
    d = view.as_dict()
    assert d["task_id"] == enq.job_id and d["status"] == "queued"
    assert d["priority"] == priority.name.lower() and d["result"] is None
    assert await q.status("nope") is None


async def test_real_worker_process_killed_mid_fetch(
    redis_client: aioredis.Redis, redis_url: str, origin: Origin, tmp_path: Path
) -> None:
    """The production worker entry point (what ``haetae worker`` runs), SIGKILLed while its job
    waits on a hanging origin: an in-process worker finishes the analysis."""
    config_file = tmp_path / "cp.yaml"
    config_file.write_text(
        "link_analyzer:\n"
        "  fetch: {allow_networks: ['127.0.0.0/8'], total_timeout_s: 30}\n"
        "  queue: {lease_s: 1, job_timeout_s: 60}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"}
    env.update(HAETAE_REDIS_URL=redis_url, PYTHONPATH=os.pathsep.join(sys.path))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "link_analyzer.runner", str(config_file), env=env
    )
    q = Queue(redis_client, lease_s=1)
    url = origin.url("/stall-once")
    try:
        enq = await q.enqueue("real-worker", {"url": url})
        view = await wait_status(q, enq.job_id, {JobStatus.ACTIVE}, within_s=20)
        for _ in range(200):  # the job is active; wait until its fetch reached the origin
            if origin.hits.get("/stall-once") == 1:
                break
            await asyncio.sleep(0.05)
        assert origin.hits["/stall-once"] == 1 and view.worker.endswith(f":{proc.pid}")
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(analyzer_config(None), redis_url, stop=stop))
    try:
        done = await wait_status(q, enq.job_id, {JobStatus.DONE}, within_s=15)
    finally:
        stop.set()
        await task
    assert done.attempts == 2 and origin.hits["/stall-once"] == 2
    assert done.result is not None
    assert done.result["metadata"]["title"] == "서울 지하철 기본요금 150원 인상"
    assert done.result["ai"]["status"] == "disabled"
