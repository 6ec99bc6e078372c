"""A real Prometheus (Debian's ``prometheus``, 2.42 here) scrapes a small exposition server every
second and remote-writes into Haetae: the samples arrive with Prometheus's labels (job, instance,
external labels) as the sender's virtual agent, and across an outage of the store (503s, which
Prometheus retries) every sample Prometheus scraped (read back from its own storage) is stored
exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from remote_write_support import Plane

from control_plane.appkeys import METRICS

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="needs the prometheus binary (Debian package 'prometheus')"
)
SOURCE = "prometheus-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def exposition() -> AsyncIterator[int]:
    """A target serving the text format: a counter that grows by one a scrape and a gauge."""
    scrapes = 0

    async def metrics(_: web.Request) -> web.Response:
        nonlocal scrapes
        scrapes += 1
        text = (
            "# TYPE demo_requests_total counter\n"
            f'demo_requests_total{{path="/a",code="200"}} {scrapes}\n'
            "# TYPE demo_temperature_celsius gauge\n"
            "demo_temperature_celsius 21.5\n"
        )
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def prometheus(tmp: Path, target: int, write_url: str, token: str) -> AsyncIterator[str]:
    """Prometheus scraping ``target`` and remote-writing to ``write_url``; yields its API URL."""
    assert PROMETHEUS is not None
    config = tmp / "prometheus.yml"
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  external_labels:
    replica: r1
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ["127.0.0.1:{target}"]
remote_write:
  - url: {write_url}
    authorization:
      credentials: {token}
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 100ms
      max_backoff: 500ms
    metadata_config:
      send_interval: 1s
"""
    )
    log = (tmp / "prometheus.log").open("wb")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",  # its own copy: what it scraped, to compare
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=log,
        stderr=log,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:  # pragma: no cover
            proc.kill()
            await proc.wait()
        log.close()


async def raw_samples(api: str, query: str) -> list[tuple[float, float]]:
    """The samples of ``query`` (a range selector) in Prometheus's own storage."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{api}/api/v1/query", params={"query": query}) as resp,
    ):
        assert resp.status == 200, await resp.text()
        result = (await resp.json())["data"]["result"]
    assert len(result) == 1, result
    return [(float(t), float(v)) for t, v in result[0]["values"]]


async def series_of(plane: Plane, name: str) -> list[dict[str, Any]]:
    resp = await plane.client.get(
        "/admin/monitoring/metrics",
        params={"name": name, "start": str(time.time() - 600)},
        headers=plane.bearer(plane.admin_token),
    )
    assert resp.status == 200, await resp.text()
    series: list[dict[str, Any]] = (await resp.json())["series"]
    return series


async def wait_for_points(plane: Plane, name: str, at_least: int, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        series = await series_of(plane, name)
        if series and len(series[0]["points"]) >= at_least:
            return series
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: {series!r} after {timeout_s} s")
        await asyncio.sleep(0.25)


async def test_prometheus_remote_writes_into_haetae(plane: Plane, tmp_path: Path) -> None:
    token = await plane.enroll(SOURCE)
    url = f"http://127.0.0.1:{plane.client.server.port}/api/v1/write"
    async with exposition() as target, prometheus(tmp_path, target, url, token) as api:
        series = await wait_for_points(plane, "demo_requests_total", 3)
        instance = f"127.0.0.1:{target}"
        assert [(s["agent"], s["labels"]) for s in series] == [
            (
                SOURCE,
                {"path": "/a", "code": "200", "job": "demo", "instance": instance, "replica": "r1"},
            )
        ]
        values = [v for _, v in series[0]["points"]]
        assert values == sorted(values) and values[0] >= 1  # the counter, scrape after scrape
        gauge = await wait_for_points(plane, "demo_temperature_celsius", 1)
        assert {v for _, v in gauge[0]["points"]} == {21.5}
        up = await wait_for_points(plane, "up", 1)  # Prometheus's own series about the scrape
        assert up[0]["labels"] == {"job": "demo", "instance": instance, "replica": "r1"}

        # The store fails for ~2 s: Prometheus gets 503s and retries the same batches.
        await plane.pool.execute("ALTER TABLE ingested_reports RENAME TO ingested_reports_away")
        try:
            await asyncio.sleep(2.5)
        finally:
            await plane.pool.execute("ALTER TABLE ingested_reports_away RENAME TO ingested_reports")
        before = len((await series_of(plane, "demo_requests_total"))[0]["points"])
        series = await wait_for_points(plane, "demo_requests_total", before + 4)
        scraped = await raw_samples(api, "demo_requests_total[10m]")
    requests = plane.app[METRICS].registry.get_sample_value
    assert (requests("haetae_remote_write_requests_total", {"outcome": "unavailable"}) or 0) >= 1
    points = series[0]["points"]
    stamps = [t for t, _ in points]
    assert len(stamps) == len(set(stamps)), "a sample stored twice"
    rows = await plane.pool.fetch(
        "SELECT x.ts, count(*) AS n FROM samples x JOIN series s USING (series_id) "
        "WHERE s.name = 'demo_requests_total' GROUP BY x.ts HAVING count(*) > 1"
    )
    assert rows == [], "a sample stored twice"
    # Nothing lost across the outage: every sample Prometheus scraped (its own TSDB) from the
    # first to the last that Haetae holds is in Haetae, with its value.
    first, last = stamps[0], stamps[-1]
    want = [(t, v) for t, v in scraped if first <= t <= last]
    assert [(round(t, 3), v) for t, v in points] == want
    assert len(want) >= 6
