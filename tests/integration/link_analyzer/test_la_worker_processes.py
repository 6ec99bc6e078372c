"""``haetae worker --processes N``: N worker processes on one queue, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis.asyncio as aioredis
from la_fakes import Origin

import link_analyzer.runner
from link_analyzer.config import LinkAnalyzerConfig
from link_analyzer.queue import JobStatus, Queue


async def test_worker_processes_share_the_queue_and_stop_on_sigterm(
    redis_client: aioredis.Redis, redis_url: str, origin: Origin, tmp_path: Path
) -> None:
    config_file = tmp_path / "cp.yaml"
    config_file.write_text(
        "link_analyzer:\n"
        "  fetch: {allow_networks: ['127.0.0.0/8']}\n"
        "  queue: {worker_concurrency: 2, worker_metrics_port: null}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"}
    env.update(HAETAE_REDIS_URL=redis_url, PYTHONPATH=os.pathsep.join(sys.path))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from haetae.cli import main; raise SystemExit(main())",
        "worker",
        "--config",
        str(config_file),
        "--processes",
        "2",
        env=env,
    )
    q = Queue(redis_client)
    children: list[psutil.Process] = []
    try:
        for _ in range(200):  # both worker processes started (not counting mp's tracker)
            children = [
                c
                for c in psutil.Process(proc.pid).children()
                if "spawn_main" in " ".join(c.cmdline())
            ]
            if len(children) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(children) == 2
        ids = [
            (await q.enqueue(f"k{i}", {"url": origin.url(f"/news/{i}")})).job_id for i in range(6)
        ]
        views = []
        for job_id in ids:
            for _ in range(400):
                view = await q.status(job_id)
                if view is not None and view.status == JobStatus.DONE:
                    break
                await asyncio.sleep(0.05)
            assert view is not None and view.status == JobStatus.DONE, view
            views.append(view)
        assert {v.result["ai"]["status"] for v in views if v.result} == {"disabled"}
        # Jobs ran in the children, not in the parent that only supervises them.
        pids = {int(v.worker.rsplit(":", 1)[1]) for v in views if v.worker}
        assert pids and pids <= {c.pid for c in children}
        os.kill(proc.pid, signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


async def test_worker_redis_client_waits_for_a_connection(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of jobs must queue for a Redis connection, not fail with "Too many
    connections" (which failed `complete` and re-ran finished jobs after their lease)."""
    seen: list[aioredis.Redis] = []

    class Recording(link_analyzer.runner.LinkAnalyzerService):
        def __init__(self, config: Any, redis: aioredis.Redis, **kw: Any) -> None:
            seen.append(redis)
            super().__init__(config, redis, **kw)

    monkeypatch.setattr(link_analyzer.runner, "LinkAnalyzerService", Recording)
    stop = asyncio.Event()
    stop.set()
    cfg = LinkAnalyzerConfig.model_validate({"queue": {"worker_metrics_port": None}})
    await link_analyzer.runner.run_worker(cfg, redis_url, stop=stop)
    assert isinstance(seen[0].connection_pool, aioredis.BlockingConnectionPool)
