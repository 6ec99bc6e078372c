"""The worker loop: lease jobs, run a handler under a timeout, heartbeat, record the outcome.

Failures are contained per job: an :class:`AnalyzerError` is retried or dead-lettered as its
``retryable`` says, a timeout is retried, anything unexpected is retried too (bounded by the job's
attempts) and logged with its traceback. A lost lease (the job was reclaimed because heartbeats
stopped reaching Redis) cancels the local run: another worker owns the job now.

A running job can see its worker through :func:`current_job` (a context variable): the Gemini
batcher uses it to stop its job's timeout from running while the job waits for a batch
(:meth:`JobContext.deadline_extended`) and to submit a batch once every slot of the worker waits
on one (no further item can join it). :class:`WorkerMetricsServer` serves the worker's own
Prometheus ``/metrics`` and a ``/health`` on a loopback port (``haetae worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from haetae.web import problem_middleware
from haetae.web.server import HardenedAppRunner
from link_analyzer.errors import AnalyzerError
from link_analyzer.metrics import FAILURE_REASONS, LinkAnalyzerMetrics
from link_analyzer.queue import Job, Queue, QueueError

Handler = Callable[[Job], Awaitable[dict[str, Any]]]


@dataclass
class JobContext:
    job: Job
    worker: Worker
    timeout: asyncio.Timeout

    @contextlib.contextmanager
    def deadline_extended(self, at_most_s: float) -> Iterator[None]:
        """The job's timeout does not run inside this block, which may last ``at_most_s``.

        On entry the deadline moves to ``at_most_s`` from now (if later); on exit the job gets
        back the time it had left when it entered (the wait did not count against it)."""
        t = self.timeout
        when = t.when()
        if when is None:
            yield
            return
        loop = asyncio.get_running_loop()
        entered = loop.time()
        t.reschedule(max(when, entered + at_most_s))
        try:
            yield
        finally:
            if not t.expired():
                t.reschedule(loop.time() + max(0.0, when - entered))


_CURRENT: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "link_analyzer_job", default=None
)


def current_job() -> JobContext | None:
    """The job the calling task runs for a :class:`Worker` (None outside a worker's job)."""
    return _CURRENT.get()


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
        self._ok_duration = self.metrics.job_duration.labels("ok")
        self._failed_duration = self.metrics.job_duration.labels("failed")
        # Jobs of this worker waiting for a Gemini batch (kept by the batcher).
        self.batch_waiting = 0
        self.running = False

    @property
    def active_jobs(self) -> int:
        return len(self._running)

    async def run(self, stop: asyncio.Event, *, grace_s: float = 30.0) -> None:
        """Work until ``stop`` is set, then let running jobs finish for up to ``grace_s``
        (jobs still running after that are cancelled; their leases lapse and they re-run)."""
        slots = asyncio.Semaphore(self.concurrency)
        self.running = True
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
            self.running = False
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
        self.metrics.jobs_started.inc()
        started = time.monotonic()
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
        (self._ok_duration if kind == "ok" else self._failed_duration).observe(
            time.monotonic() - started
        )
        try:
            if kind == "ok":
                done = await self.queue.complete(job, value)
                if not done:
                    self.log.warning("job %s finished after its lease was lost", job.id)
                self.metrics.jobs.labels("done" if done else "lease-lost").inc()
            else:
                error, retryable, reason = value
                self.metrics.job_failures.labels(reason).inc()
                status = await self.queue.fail(job, error, retryable=retryable)
                self.metrics.jobs.labels(status.value if status else "lease-lost").inc()
        except QueueError:
            # The lease lapses and the job runs again elsewhere: nothing is lost.
            self.log.exception("job %s: recording the outcome failed", job.id)
        self.processed += 1

    async def _call(self, job: Job) -> tuple[str, Any]:
        try:
            async with asyncio.timeout(job.timeout_s) as timeout:
                token = _CURRENT.set(JobContext(job, self, timeout))
                try:
                    return "ok", await self.handler(job)
                finally:
                    _CURRENT.reset(token)
        except TimeoutError:
            return "fail", (f"timeout: no result within {job.timeout_s:g} s", True, "timeout")
        except AnalyzerError as exc:
            reason = exc.code if exc.code in FAILURE_REASONS else AnalyzerError.code
            return "fail", (f"{exc.code}: {exc}", exc.retryable, reason)
        except Exception as exc:
            self.log.exception("job %s: unexpected error", job.id)
            return "fail", (f"internal: {type(exc).__name__}: {exc}", True, "internal")

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


class WorkerMetricsServer:
    """``GET /metrics`` (Prometheus text: the worker's registry, the queue depth sampled per
    scrape) and ``GET /health`` for one worker process, on a loopback address."""

    def __init__(
        self,
        worker: Worker,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ping: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.worker = worker
        self.host = host
        self.port = port
        self.ping = ping
        self.started_at = time.time()
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (``port=0`` picks a free one)."""
        # problem+json for 404/405, and the kit's protocol guards (see haetae.web.server).
        app = web.Application(middlewares=[problem_middleware])
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        self._runner = HardenedAppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        metrics = self.worker.metrics
        metrics.jobs_running.set(self.worker.active_jobs)  # read at scrape, not kept per job
        try:
            async with asyncio.timeout(1.0):
                depth = await self.worker.queue.depth()
            for state, n in depth.items():
                metrics.queue_depth.labels(state).set(n)
        except Exception as exc:  # the scrape still answers; the gauges keep their last value
            self.worker.log.warning("queue depth for /metrics unavailable: %s", exc)
        body = generate_latest(metrics.registry)  # small; on the loop (collectors read L1s)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        w = self.worker
        redis_ok = True
        if self.ping is not None:
            try:
                async with asyncio.timeout(1.0):
                    await self.ping()
            except Exception:
                redis_ok = False
        healthy = w.running and redis_ok
        body = {
            "status": "ok" if healthy else "unavailable",
            "worker_id": w.worker_id,
            "running": w.running,
            "redis": "ok" if redis_ok else "unreachable",
            "concurrency": w.concurrency,
            "active_jobs": w.active_jobs,
            "batch_waiting": w.batch_waiting,
            "processed": w.processed,
            "uptime_s": round(time.time() - self.started_at, 1),
        }
        return web.json_response(body, status=200 if healthy else 503)
