"""``haetae worker``'s own /metrics and /health on a loopback port: queue depth, jobs started,
finished, failed, retried and dead-lettered, job durations, Gemini calls/tokens/cost, fetch
errors and the worker's analysis-cache layers."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from la_fakes import FakeGemini, Origin, analyzer_config
from prometheus_client.parser import text_string_to_metric_families
from tests_support import free_port

from link_analyzer.config import QueueConfig
from link_analyzer.queue import JobStatus, Queue
from link_analyzer.runner import run_worker
from link_analyzer.urls import canonicalize


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


async def wait_final(q: Queue, job_id: str, within_s: float = 15) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        view = await q.status(job_id)
        if view is not None and view.status in {JobStatus.DONE, JobStatus.DEAD}:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished")


async def test_worker_serves_its_own_metrics_and_health(
    redis_client: aioredis.Redis, redis_url: str, origin: Origin, fake_gemini: FakeGemini
) -> None:
    port = free_port()
    cfg = analyzer_config(
        fake_gemini.base_url,
        queue={
            "lease_s": 2,
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.2,
            "worker_metrics_port": port,
        },
    )
    q = Queue(redis_client, lease_s=2)
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(cfg, redis_url, stop=stop, concurrency=4))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # until the server listens
                try:
                    async with http.get(f"{base}/health") as resp:
                        health = await resp.json()
                        if health["running"]:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            assert health["status"] == "ok" and health["redis"] == "ok"
            assert health["concurrency"] == 4

            good = origin.url("/article")
            bad = origin.url("/to?to=http://169.254.169.254/latest/meta-data/")
            ok_job = await q.enqueue(canonicalize(good).key, {"url": good})
            bad_job = await q.enqueue(canonicalize(bad).key, {"url": bad}, max_attempts=2)
            assert (await wait_final(q, ok_job.job_id)).status == JobStatus.DONE
            assert (await wait_final(q, bad_job.job_id)).status == JobStatus.DEAD

            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                m = samples(await resp.text())
            async with http.get(f"{base}/health") as resp:
                health = await resp.json()
    finally:
        stop.set()
        await task

    def v(name: str, **labels: str) -> float:
        return m[name, tuple(sorted(labels.items()))]

    assert v("haetae_link_jobs_started_total") == 2
    assert v("haetae_link_jobs_total", outcome="done") == 1
    # An SSRF refusal cannot improve: dead-lettered at its first failure, not retried.
    assert v("haetae_link_jobs_total", outcome="dead") == 1
    assert v("haetae_link_jobs_total", outcome="retrying") == 0
    assert v("haetae_link_job_failures_total", reason="ssrf-refused") == 1
    assert v("haetae_link_job_duration_seconds_count", result="ok") == 1
    assert v("haetae_link_job_duration_seconds_count", result="failed") == 1
    assert v("haetae_link_queue_depth", state="dead") >= 1
    assert v("haetae_link_queue_depth", state="queued") == 0
    assert v("haetae_link_gemini_calls_total", mode="online", result="ok") == 1
    assert v("haetae_link_gemini_tokens_total", kind="output") == 50
    assert v("haetae_link_gemini_cost_usd_total", mode="online") > 0
    assert v("haetae_link_fetch_errors_total", kind="page", reason="ssrf-refused") == 1
    assert v("haetae_link_jobs_running") == 0
    # The worker's analysis cache (haetae.cache layers) is exported too.
    assert v("haetae_cache_requests_total", cache="link_analyzer", layer="l2", outcome="miss") >= 1
    assert health["processed"] == 2 and health["active_jobs"] == 0


async def test_a_taken_port_does_not_stop_the_worker(
    redis_client: aioredis.Redis, redis_url: str, origin: Origin
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = analyzer_config(None, queue={"worker_metrics_port": port, "lease_s": 2})
        q = Queue(redis_client, lease_s=2)
        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(cfg, redis_url, stop=stop))
        try:
            url = origin.url("/article")
            job = await q.enqueue(canonicalize(url).key, {"url": url})
            assert (await wait_final(q, job.job_id)).status == JobStatus.DONE
        finally:
            stop.set()
            await task


def test_metrics_listen_on_loopback_only() -> None:
    assert QueueConfig(worker_metrics_host="::1").worker_metrics_host == "::1"
    assert QueueConfig().worker_metrics_port == 8344
    with pytest.raises(ValueError, match="loopback"):
        QueueConfig(worker_metrics_host="0.0.0.0")
