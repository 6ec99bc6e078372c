"""Link-analyzer job queue vs SAQ, in the same run, on the same Redis.

Two measurements, each for ``link_analyzer.queue`` (with ``link_analyzer.worker.Worker``) and
for SAQ (``saq.Queue`` + ``saq.Worker``, the peer named in the issue), both with the same worker
concurrency and a no-op job:

* drain: N jobs enqueued first, then one worker started; jobs/s from the worker's start until the
  N-th job has *completed* (its outcome written to Redis). Enqueueing is not timed.
* enqueue-to-start: an idle worker waits; M jobs are enqueued one at a time, ``--gap-ms`` apart;
  latency from just before the enqueue call to the job function's first line (same process, same
  monotonic clock).

Goals (issue 5, section 7): drain >= 2x SAQ's in the same run; enqueue-to-start p99 <= 5 ms.

    python benchmarks/link_analyzer_queue.py [--jobs 5000] [--concurrency 10] [--probes 500]

Redis: ``HAETAE_BENCH_REDIS_URL`` or an embedded redis-server. The database is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from link_analyzer_fakes import redis_url, summary_ms, table

from link_analyzer.queue import Job, Queue
from link_analyzer.worker import Worker

BATCH = 50  # enqueue calls in flight at once while filling the queue


class Probe:
    """Counts job starts/completions and records enqueue-to-start latencies."""

    def __init__(self) -> None:
        self.started = 0
        self.latencies: list[float] = []
        self.all_started = asyncio.Event()
        self.expect = 0

    def start(self, t0: float | None) -> None:
        now = time.perf_counter()
        if t0 is not None:
            self.latencies.append(now - t0)
        self.started += 1
        if self.started >= self.expect:
            self.all_started.set()


async def _fill(n: int, enqueue: Callable[[int], Awaitable[Any]]) -> None:
    for lo in range(0, n, BATCH):
        await asyncio.gather(*(enqueue(i) for i in range(lo, min(n, lo + BATCH))))


# --- ours ---------------------------------------------------------------------------------


async def ours_drain(url: str, jobs: int, concurrency: int) -> float:
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    queue = Queue(client)
    await _fill(jobs, lambda i: queue.enqueue(f"k{i}", {}))
    probe = Probe()
    probe.expect = jobs

    async def noop(job: Job) -> dict[str, Any]:
        probe.start(None)
        return {}

    worker = Worker(queue, noop, concurrency=concurrency, poll_s=0.2)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(worker.run(stop, grace_s=10))
    while worker.processed < jobs:  # noqa: ASYNC110 (the worker owns the counter)
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await client.aclose()
    return jobs / elapsed


async def ours_latency(url: str, probes: int, concurrency: int, gap_s: float) -> list[float]:
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    queue = Queue(client)
    probe = Probe()
    probe.expect = probes

    async def noop(job: Job) -> dict[str, Any]:
        probe.start(job.payload["t"])
        return {}

    worker = Worker(queue, noop, concurrency=concurrency, poll_s=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, grace_s=10))
    await asyncio.sleep(0.3)  # the worker is idle, blocked waiting for work
    # A separate client for the producer, as the API process would have.
    producer = Queue(aioredis.Redis.from_url(url))
    for i in range(probes):
        await producer.enqueue(f"p{i}", {"t": time.perf_counter()})
        await asyncio.sleep(gap_s)
    await asyncio.wait_for(probe.all_started.wait(), 30)
    stop.set()
    await task
    await producer.redis.aclose()
    await client.aclose()
    return probe.latencies


# --- SAQ ----------------------------------------------------------------------------------


async def saq_drain(url: str, jobs: int, concurrency: int) -> float:
    import saq
    from saq.queue.redis import RedisQueue  # takes a client: unix sockets too

    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    queue = RedisQueue(aioredis.Redis.from_url(url), name="bench")
    await queue.connect()
    await _fill(jobs, lambda i: queue.enqueue("noop"))
    probe = Probe()
    probe.expect = jobs

    async def noop(ctx: Any) -> None:
        probe.start(None)

    done = 0
    all_done = asyncio.Event()

    async def after(ctx: Any) -> None:
        nonlocal done
        done += 1
        if done >= jobs:
            all_done.set()

    worker = saq.Worker(queue, [("noop", noop)], concurrency=concurrency, after_process=after)
    started = time.perf_counter()
    task = asyncio.create_task(worker.start())
    await asyncio.wait_for(all_done.wait(), 300)
    # after_process runs before SAQ writes the job's completion; wait for the last writes.
    while (await queue.info())["active"] > 0:  # noqa: ASYNC110 (SAQ owns the state)
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - started
    await worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await queue.disconnect()
    return jobs / elapsed


async def saq_latency(url: str, probes: int, concurrency: int, gap_s: float) -> list[float]:
    import saq
    from saq.queue.redis import RedisQueue  # takes a client: unix sockets too

    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    queue = RedisQueue(aioredis.Redis.from_url(url), name="bench")
    await queue.connect()
    probe = Probe()
    probe.expect = probes

    async def noop(ctx: Any, *, t: float) -> None:
        probe.start(t)

    worker = saq.Worker(queue, [("noop", noop)], concurrency=concurrency)
    task = asyncio.create_task(worker.start())
    await asyncio.sleep(0.3)
    producer = RedisQueue(aioredis.Redis.from_url(url), name="bench")
    await producer.connect()
    for _ in range(probes):
        await producer.enqueue("noop", t=time.perf_counter())
        await asyncio.sleep(gap_s)
    await asyncio.wait_for(probe.all_started.wait(), 30)
    await worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await producer.disconnect()
    await queue.disconnect()
    return probe.latencies


async def main(args: argparse.Namespace) -> None:
    with redis_url() as url:
        # Warm-up (script loading, connection pools) for both, untimed.
        await ours_drain(url, 200, args.concurrency)
        await saq_drain(url, 200, args.concurrency)
        drain = {
            "saq": await saq_drain(url, args.jobs, args.concurrency),
            "link_analyzer.queue": await ours_drain(url, args.jobs, args.concurrency),
        }
        gap = args.gap_ms / 1000
        lat = {
            "saq": summary_ms(await saq_latency(url, args.probes, args.concurrency, gap)),
            "link_analyzer.queue": summary_ms(
                await ours_latency(url, args.probes, args.concurrency, gap)
            ),
        }
    print(
        f"no-op jobs: drain {args.jobs:,}, concurrency {args.concurrency}; "
        f"enqueue-to-start {args.probes} probes {args.gap_ms:g} ms apart"
    )
    rows = [
        [
            name,
            drain[name],
            lat[name]["p50"],
            lat[name]["p95"],
            lat[name]["p99"],
        ]
        for name in ("saq", "link_analyzer.queue")
    ]
    print(table(["queue", "drain jobs/s", "e2s p50 ms", "e2s p95 ms", "e2s p99 ms"], rows))
    ratio = drain["link_analyzer.queue"] / drain["saq"]
    p99 = lat["link_analyzer.queue"]["p99"]
    print(f"drain ratio ours/SAQ: {ratio:.2f}x (goal >= 2x): {'PASS' if ratio >= 2 else 'FAIL'}")
    print(f"enqueue-to-start p99: {p99:.2f} ms (goal <= 5 ms): {'PASS' if p99 <= 5 else 'FAIL'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--gap-ms", type=float, default=2.0)
    asyncio.run(main(parser.parse_args()))
