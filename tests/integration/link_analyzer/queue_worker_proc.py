"""A queue worker in its own process, for the kill test: ``python queue_worker_proc.py URL ID``.

Its handler stalls on a job's first attempt when the payload asks for it (so the test can kill
the process mid-job) and otherwise answers at once with who ran it.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import redis.asyncio as aioredis

from link_analyzer.queue import Job, Queue
from link_analyzer.worker import Worker


async def main(redis_url: str, worker_id: str, lease_s: float) -> None:
    client = aioredis.Redis.from_url(redis_url)
    queue = Queue(client, lease_s=lease_s)

    async def handler(job: Job) -> dict[str, Any]:
        if job.payload.get("stall_first") and job.attempt == 1:
            print(f"started {job.id}", flush=True)
            await asyncio.sleep(3600)
        return {"worker": worker_id, "attempt": job.attempt}

    print("ready", flush=True)
    await Worker(queue, handler, worker_id=worker_id, poll_s=0.2).run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
