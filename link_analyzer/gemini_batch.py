"""Queued low-priority work through the Gemini Batch API, at batch prices.

A worker's low-priority jobs hand their item to :class:`GeminiBatcher` instead of calling
``generateContent``. Items arriving within ``max_wait_s`` of the first (or until ``max_items``)
become one batch with inlined requests (``client.aio.batches.create``), polled with
``batches.get`` until it ends; each inlined response is mapped back to its item by the
``metadata.key`` it was sent with, and the waiting job gets its answer.

Inside a worker's job (:func:`link_analyzer.worker.current_job`):

* the job keeps its queue lease by heartbeats while it waits, and its ``queue.job_timeout_s``
  does not run meanwhile: the wait is bounded by ``deadline_s`` instead (a batch not done by then
  fails its items retryably; the job gets back the time it had left once the answer is in);
* a batch holds at most as many items as the worker has slots: once every slot of the worker
  waits on a batch no further item can arrive, so the open batch is submitted at once rather
  than after ``max_wait_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.genai import errors as genai_errors
from google.genai import types

from link_analyzer.gemini import (
    Analysis,
    AnalysisInput,
    GeminiAnalyzer,
    GeminiError,
    parse_response,
)
from link_analyzer.ledger import Usage
from link_analyzer.worker import JobContext, current_job

if TYPE_CHECKING:
    from link_analyzer.metrics import LinkAnalyzerMetrics


@dataclass(frozen=True)
class BatchSettings:
    max_items: int = 100
    max_wait_s: float = 2.0
    poll_s: float = 10.0
    # Consecutive failed polls (5xx, network) before the batch's jobs are failed.
    max_failed_polls: int = 5
    # A batch not finished this long after its submission fails its items (retryably); a job
    # waiting on one is not cut by its own timeout before that (plus max_wait_s).
    deadline_s: float = 3600.0


@dataclass
class _Pending:
    item: AnalysisInput
    answer: asyncio.Future[tuple[Analysis, Usage]]


class GeminiBatcher:
    """Collects items into Batch API jobs; ``aclose()`` abandons the batches still running."""

    def __init__(
        self,
        gemini: GeminiAnalyzer,
        settings: BatchSettings | None = None,
        *,
        logger: logging.Logger | None = None,
        metrics: LinkAnalyzerMetrics | None = None,
    ) -> None:
        self.gemini = gemini
        self.metrics = metrics
        self.settings = settings or BatchSettings()
        self.log = logger or logging.getLogger("haetae.link_analyzer.gemini_batch")
        self._open: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.batches_submitted = 0

    async def analyze(self, item: AnalysisInput) -> tuple[Analysis, Usage]:
        loop = asyncio.get_running_loop()
        pending = _Pending(item, loop.create_future())
        # Marks a failure as seen even when its job was cancelled and nobody awaits it.
        pending.answer.add_done_callback(_retrieve)
        self._open.append(pending)
        job = current_job()
        if job is not None:
            job.worker.batch_waiting += 1
        if self.metrics is not None:
            self.metrics.batch_waiting.inc()
        try:
            if len(self._open) >= self.settings.max_items or _slots_exhausted(job):
                self._submit()
            elif self._timer is None:
                self._timer = loop.call_later(self.settings.max_wait_s, self._submit)
            if job is None:
                return await asyncio.shield(pending.answer)
            # The wait for the batch does not count against the job's own timeout.
            with job.deadline_extended(self.settings.deadline_s + self.settings.max_wait_s + 5):
                # A cancelled job (timeout, lost lease) leaves its batch running for the others.
                return await asyncio.shield(pending.answer)
        finally:
            if job is not None:
                job.worker.batch_waiting -= 1
            if self.metrics is not None:
                self.metrics.batch_waiting.dec()

    def _submit(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        entries, self._open = self._open, []
        if not entries:
            return
        task = asyncio.get_running_loop().create_task(self._run(entries))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, entries: list[_Pending]) -> None:
        try:
            results = await self._batch([e.item for e in entries])
        except asyncio.CancelledError:
            for e in entries:
                e.answer.cancel()
            raise
        except Exception as exc:  # every waiting job must hear about it
            error = exc if isinstance(exc, GeminiError) else GeminiError(f"batch failed: {exc}")
            for e in entries:
                if not e.answer.done():
                    e.answer.set_exception(error)
            return
        for e, result in zip(entries, results, strict=True):
            if e.answer.done():
                continue
            if isinstance(result, GeminiError):
                e.answer.set_exception(result)
            else:
                e.answer.set_result(result)

    async def _batch(
        self, items: list[AnalysisInput]
    ) -> list[tuple[Analysis, Usage] | GeminiError]:
        model = self.gemini.settings.model
        requests = [
            types.InlinedRequest(
                contents=item.contents(), config=self.gemini.config, metadata={"key": str(i)}
            )
            for i, item in enumerate(items)
        ]
        aio = self.gemini.client.aio
        try:
            job = await aio.batches.create(
                model=model,
                src=types.BatchJobSource(inlined_requests=requests),
                config=types.CreateBatchJobConfig(display_name=f"haetae-la-{len(items)}"),
            )
            self.batches_submitted += 1
            self.log.info("submitted Gemini batch %s (%d items)", job.name, len(items))
            failed_polls = 0
            deadline = time.monotonic() + self.settings.deadline_s
            while not job.done:
                if time.monotonic() >= deadline:
                    raise GeminiError(
                        f"Gemini batch {job.name} not done within {self.settings.deadline_s:g} s"
                    )
                await asyncio.sleep(
                    min(self.settings.poll_s, max(0.0, deadline - time.monotonic()))
                )
                assert job.name is not None
                try:
                    job = await aio.batches.get(name=job.name)
                    failed_polls = 0
                except (genai_errors.ServerError, OSError, TimeoutError) as exc:
                    # The batch runs on regardless: a failed poll is not a failed batch (giving
                    # up would make the jobs retry and pay for a second batch).
                    failed_polls += 1
                    if failed_polls >= self.settings.max_failed_polls:
                        raise
                    self.log.warning("polling Gemini batch %s failed: %s", job.name, exc)
        except genai_errors.APIError as exc:
            raise GeminiError(
                f"Gemini batch answered {exc.code}: {exc.message}", status=exc.code
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise GeminiError(f"cannot reach Gemini: {exc}") from exc
        if job.state != types.JobState.JOB_STATE_SUCCEEDED:  # failed, cancelled or expired
            detail = job.error.message if job.error else None
            raise GeminiError(f"Gemini batch {job.name} ended {job.state}: {detail}")
        responses = (job.dest.inlined_responses if job.dest else None) or []
        results: list[tuple[Analysis, Usage] | GeminiError] = [
            GeminiError(f"Gemini batch {job.name} has no answer for this item") for _ in items
        ]
        for position, answer in enumerate(responses):
            # Mapped by the key we sent; the position only if an answer came without it.
            key = (answer.metadata or {}).get("key", str(position))
            index = int(key) if key.isdigit() and int(key) < len(items) else None
            if index is None:
                continue
            if answer.error is not None or answer.response is None:
                message = answer.error.message if answer.error else "empty response"
                results[index] = GeminiError(f"Gemini batch item failed: {message}")
                continue
            try:
                results[index] = parse_response(answer.response, model, batch=True)
            except GeminiError as exc:
                results[index] = exc
        return results

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for e in self._open:
            e.answer.cancel()
        self._open = []
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def batch_wait(at_most_s: float) -> contextlib.AbstractContextManager[None]:
    """Inside a worker's job: a wait for a batched answer (someone else's, under the analysis
    lease) that the job's own timeout does not count; elsewhere a no-op."""
    job = current_job()
    return job.deadline_extended(at_most_s) if job is not None else contextlib.nullcontext()


def _slots_exhausted(job: JobContext | None) -> bool:
    """Every slot of the job's worker waits on a batch: no other item can join this one."""
    return job is not None and job.worker.batch_waiting >= job.worker.concurrency


def _retrieve(answer: asyncio.Future[tuple[Analysis, Usage]]) -> None:
    if not answer.cancelled():
        answer.exception()
