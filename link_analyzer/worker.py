"""The worker loop: lease jobs, run a handler under a timeout, heartbeat, record the outcome.

Failures are contained per job: an :class:`AnalyzerError` is retried or dead-lettered as its
``retryable`` says, a timeout is retried, anything unexpected is retried too (bounded by the job's
attempts) and logged with its traceback. A lost lease (the job was reclaimed because heartbeats
stopped reaching Redis) cancels the local run: another worker owns the job now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from link_analyzer.errors import AnalyzerError
from link_analyzer.metrics import LinkAnalyzerMetrics
from link_analyzer.queue import Job, Queue, QueueError

Handler = Callable[[Job], Awaitable[dict[str, Any]]]


class Worker:
    def __init__(
        self,
        queue: Queue,
        handler: Handler,
        *,
        worker_id: str | None = None,
        concurrency: int = 16,
        poll_s: float = 0.5,
        heartbeat_s: float | None = None,
        logger: logging.Logger | None = None,
        metrics: LinkAnalyzerMetrics | None = None,
    ) -> None:
        self.queue = queue
        self.metrics = metrics or LinkAnalyzerMetrics()
        self.handler = handler
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s or max(0.05, queue.lease_s / 3)
        self.log = logger or logging.getLogger("haetae.link_analyzer.worker")
        self._running: set[asyncio.Task[None]] = set()
        self.processed = 0

    async def run(self, stop: asyncio.Event, *, grace_s: float = 30.0) -> None:
        """Work until ``stop`` is set, then let running jobs finish for up to ``grace_s``
        (jobs still running after that are cancelled; their leases lapse and they re-run)."""
        slots = asyncio.Semaphore(self.concurrency)
        try:
            while not stop.is_set():
                await slots.acquire()
                # Lease as many jobs as there are free slots, in one round trip.
                want = 1
                while want < self.concurrency and not slots.locked():
                    await slots.acquire()  # free: returns at once
                    want += 1
                try:
                    jobs = await self.queue.dequeue_many(self.worker_id, want)
                except QueueError:
                    for _ in range(want):
                        slots.release()
                    self.log.exception("dequeue failed; retrying")
                    await _wait(stop, self.poll_s)
                    continue
                for _ in range(want - len(jobs)):
                    slots.release()
                if not jobs:
                    await self._idle(stop)
                    continue
                for job in jobs:
                    task = asyncio.create_task(self._run_one(job))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                    task.add_done_callback(lambda _t: slots.release())
        finally:
            if self._running:
                _done, pending = await asyncio.wait(self._running, timeout=grace_s)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    async def _idle(self, stop: asyncio.Event) -> None:
        waiter = asyncio.ensure_future(self.queue.wait_for_work(self.poll_s))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (waiter, stopper):
                fut.cancel()
            await asyncio.gather(waiter, stopper, return_exceptions=True)
        if not waiter.cancelled() and waiter.exception() is not None:
            self.log.warning("waiting for work failed: %s", waiter.exception())
            await _wait(stop, self.poll_s)

    async def _run_one(self, job: Job) -> None:
        # The handler runs in this task; heartbeats start only if it is still running after
        # ``heartbeat_s`` (most jobs are done by then: no heartbeat task for them at all).
        this = asyncio.current_task()
        assert this is not None
        beat: asyncio.Task[bool] | None = None

        def start_heartbeat() -> None:
            nonlocal beat
            beat = asyncio.create_task(self._heartbeat(job, this))

        timer = asyncio.get_running_loop().call_later(self.heartbeat_s, start_heartbeat)
        try:
            outcome = await self._call(job)
        except asyncio.CancelledError:
            if beat is not None and beat.done() and not beat.cancelled() and not beat.result():
                self.log.warning("job %s: lease lost, abandoned to its new owner", job.id)
                self.metrics.jobs.labels("lease-lost").inc()
                this.uncancel()  # the cancellation was ours, and it is handled
                return
            raise
        finally:
            timer.cancel()
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
        kind, value = outcome
        try:
            if kind == "ok":
                done = await self.queue.complete(job, value)
                if not done:
                    self.log.warning("job %s finished after its lease was lost", job.id)
                self.metrics.jobs.labels("done" if done else "lease-lost").inc()
            else:
                error, retryable = value
                status = await self.queue.fail(job, error, retryable=retryable)
                self.metrics.jobs.labels(status.value if status else "lease-lost").inc()
        except QueueError:
            # The lease lapses and the job runs again elsewhere: nothing is lost.
            self.log.exception("job %s: recording the outcome failed", job.id)
        self.processed += 1

    async def _call(self, job: Job) -> tuple[str, Any]:
        try:
            async with asyncio.timeout(job.timeout_s):
                return "ok", await self.handler(job)
        except TimeoutError:
            return "fail", (f"timeout: no result within {job.timeout_s:g} s", True)
        except AnalyzerError as exc:
            return "fail", (f"{exc.code}: {exc}", exc.retryable)
        except Exception as exc:
            self.log.exception("job %s: unexpected error", job.id)
            return "fail", (f"internal: {type(exc).__name__}: {exc}", True)

    async def _heartbeat(self, job: Job, work: asyncio.Task[Any]) -> bool:
        """Renew the lease now and every ``heartbeat_s``; cancel ``work`` once it is lost."""
        while True:
            try:
                ours = await self.queue.heartbeat(job)
            except Exception:
                # A blip: keep working; if Redis stays away the lease lapses and the job
                # re-runs elsewhere, and our late completion is then refused by token.
                self.log.warning("job %s: heartbeat failed", job.id, exc_info=True)
                ours = True
            if not ours:
                work.cancel()
                return False
            await asyncio.sleep(self.heartbeat_s)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
