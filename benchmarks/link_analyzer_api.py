"""Link-analyzer HTTP API latency: cache hits and task-status lookups on the real control plane.

The real app factory (``control_plane.app.create_app``: auth, problem+json, metrics middleware,
the link-analyzer routes) on a loopback port, with an admin token; one keep-alive client sends
requests one at a time, so the figures are service latency, not queueing. The fake origin (with
latency ``--latency``) and the fake Gemini run in a child process.

* cache hit: ``POST /api/v1/analyze`` for a URL analysed before (metadata and analysis cached).
  Goal p95 <= 5 ms. Baseline in the same run: the same request uncached (first visit).
* status: ``GET /api/v1/analyze/status/{id}`` of finished tasks (their result inline) and of
  queued ones. Goal p99 <= 5 ms. Floor in the same run: ``Queue.status`` straight on Redis.

    python benchmarks/link_analyzer_api.py [--urls 50] [--hits 1000] [--lookups 1000]

Postgres (the token store): ``HAETAE_BENCH_POSTGRES_DSN`` or an embedded one; Redis:
``HAETAE_BENCH_REDIS_URL`` or an embedded one. The Redis database is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from link_analyzer_fakes import (
    analyzer_config,
    redis_client,
    redis_url,
    remote_fakes,
    summary_ms,
    table,
)
from pydantic import SecretStr

from control_plane.app import create_app
from control_plane.config import ControlPlaneConfig
from haetae.config import load
from haetae.embedded import EmbeddedPostgres
from link_analyzer.api import LINK_ANALYZER
from link_analyzer.worker import Worker


@contextlib.contextmanager
def postgres_dsn(tmp: Path) -> Iterator[str]:
    external = os.environ.get("HAETAE_BENCH_POSTGRES_DSN")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp / "pg", cleanup="delete")
    try:
        yield server.start()
    finally:
        server.stop()


async def _timed(
    session: aiohttp.ClientSession, method: str, url: str, want: int, **kw: Any
) -> tuple[float, Any]:
    t0 = time.perf_counter()
    async with session.request(method, url, **kw) as resp:
        body = await resp.json()
    elapsed = time.perf_counter() - t0
    assert resp.status == want, (resp.status, body)
    return elapsed, body


async def run(args: argparse.Namespace, tmp: Path, dsn: str, rurl: str) -> None:
    client = redis_client(rurl)
    await client.flushdb()
    await client.aclose()
    async with remote_fakes(origin_latency=args.latency, hosts=8) as up:
        cfg = load(ControlPlaneConfig, "")
        cfg = cfg.model_copy(
            update={
                "postgres": cfg.postgres.model_copy(update={"dsn": SecretStr(dsn)}),
                "redis": cfg.redis.model_copy(update={"url": SecretStr(rurl)}),
                "auth": cfg.auth.model_copy(update={"bootstrap_token_file": tmp / "admin.token"}),
                "link_analyzer": analyzer_config(up.gemini_url),
            }
        )
        app = create_app(cfg)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        token = (tmp / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with aiohttp.ClientSession(base, headers=headers) as session:
                rows = await measure(args, app, session, up)
        finally:
            await runner.cleanup()
    print(
        f"API on loopback, one client, sequential requests; origin latency "
        f"{args.latency * 1000:g} ms; {args.urls} URLs"
    )
    print(table(["request", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows))


async def measure(
    args: argparse.Namespace, app: web.Application, session: aiohttp.ClientSession, up: Any
) -> list[list[Any]]:
    urls = [up.url(i, host=i) for i in range(args.urls)]
    await _timed(session, "POST", "/api/v1/analyze", 200, json={"url": up.url(10**6)})  # warm-up
    uncached = [
        (await _timed(session, "POST", "/api/v1/analyze", 200, json={"url": u}))[0] for u in urls
    ]
    hits = []
    for i in range(args.hits):
        elapsed, body = await _timed(
            session, "POST", "/api/v1/analyze", 200, json={"url": urls[i % len(urls)]}
        )
        assert body["cached"] == {"metadata": True, "analysis": True}, body["cached"]
        hits.append(elapsed)

    # Tasks: one batch left queued, one run to completion by an in-process worker.
    service = app[LINK_ANALYZER]
    done_ids = []
    for i in range(args.urls):
        _, body = await _timed(
            session, "POST", "/api/v1/analyze/async", 202, json={"url": up.url(2 * 10**5 + i)}
        )
        done_ids.append(body["task_id"])
    stop = asyncio.Event()
    worker = Worker(service.queue, service.handle, concurrency=16, poll_s=0.2)
    task = asyncio.create_task(worker.run(stop))
    while worker.processed < len(done_ids):  # noqa: ASYNC110 (the worker owns the counter)
        await asyncio.sleep(0.02)
    stop.set()
    await task
    queued_ids = []
    for i in range(args.urls):
        _, body = await _timed(
            session, "POST", "/api/v1/analyze/async", 202, json={"url": up.url(3 * 10**5 + i)}
        )
        queued_ids.append(body["task_id"])

    status_done, status_queued, floor = [], [], []
    for i in range(args.lookups):
        tid = done_ids[i % len(done_ids)]
        elapsed, body = await _timed(session, "GET", f"/api/v1/analyze/status/{tid}", 200)
        assert body["status"] == "done", body
        status_done.append(elapsed)
        qid = queued_ids[i % len(queued_ids)]
        status_queued.append(
            (await _timed(session, "GET", f"/api/v1/analyze/status/{qid}", 200))[0]
        )
        t0 = time.perf_counter()
        await service.queue.status(tid)
        floor.append(time.perf_counter() - t0)

    def row(name: str, values: list[float]) -> list[Any]:
        s = summary_ms(values)
        return [name, s["n"], s["p50"], s["p95"], s["p99"], s["max"]]

    rows = [
        row("POST /analyze uncached (baseline)", uncached),
        row("POST /analyze cache hit", hits),
        row("GET /status done task (result inline)", status_done),
        row("GET /status queued task", status_queued),
        row("Queue.status() on Redis (floor)", floor),
    ]
    hit, unc = summary_ms(hits), summary_ms(uncached)
    st = summary_ms(status_done + status_queued)
    print(
        f"cache hit p95 {hit['p95']:.2f} ms (goal <= 5): {'PASS' if hit['p95'] <= 5 else 'FAIL'}"
        f"; uncached/hit p50 ratio {unc['p50'] / hit['p50']:.1f}x"
    )
    print(
        f"status lookup p99 {st['p99']:.2f} ms (goal <= 5): {'PASS' if st['p99'] <= 5 else 'FAIL'}"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=50)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05, help="origin latency, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="la-api-bench-") as d:
        tmp = Path(d)
        with postgres_dsn(tmp) as dsn, redis_url() as rurl:
            asyncio.run(run(args, tmp, dsn, rurl))


if __name__ == "__main__":
    main()
