"""The same queries against Haetae and a real Prometheus (Debian's 2.42 server) scraping the
same target: Prometheus scrapes it directly, Haetae through its agent. Answers agree within
tolerance.

The target's counters rise linearly with wall time, so rates do not depend on when each side
happened to scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from promapi_support import PromApiPlane
from tests_support import free_port

from agent import Agent, AgentConfig

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian) missing")

RATES = {"200": 10.0, "500": 0.5}
# Cumulative per-second rates of the latency histogram's buckets.
BUCKETS = {"0.1": 4.0, "0.5": 8.0, "1": 9.0, "+Inf": 10.0}
SCRAPE_S = 1.0
WARM_S = 24.0


def _exposition(elapsed: float) -> str:
    lines = ["# TYPE demo_requests_total counter"]
    for code, per_s in RATES.items():
        lines.append(f'demo_requests_total{{code="{code}"}} {per_s * elapsed}')
    lines.append("# TYPE demo_latency_seconds histogram")
    for le, per_s in BUCKETS.items():
        lines.append(f'demo_latency_seconds_bucket{{le="{le}"}} {per_s * elapsed}')
    lines.append(f"demo_latency_seconds_sum {2.5 * elapsed}")
    lines.append(f"demo_latency_seconds_count {BUCKETS['+Inf'] * elapsed}")
    lines.append("# TYPE demo_temperature gauge")
    lines.append("demo_temperature 21.5")
    return "\n".join(lines) + "\n"


@pytest.fixture
async def target() -> AsyncIterator[str]:
    started = time.time()

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=_exposition(time.time() - started), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def prometheus(target: str, tmp_path: Path) -> AsyncIterator[str]:
    assert PROMETHEUS is not None
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_S:g}s\n"
        "scrape_configs:\n  - job_name: demo\n    static_configs:\n"
        f"      - targets: ['{target.removeprefix('http://')}']\n"
    )
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _until_ready(f"{url}/-/ready")
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _until_ready(url: str) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} not ready within 20 s")


@pytest.fixture
async def agent(plane: PromApiPlane, target: str, tmp_path: Path) -> AsyncIterator[None]:
    config = AgentConfig(
        agent_id="demo-1",
        interval_s=SCRAPE_S,
        state_dir=tmp_path / "agent",
        collectors=["app"],
        http={"host": "127.0.0.1", "port": 0},
        app={"metrics_url": f"{target}/metrics"},
        control_plane={"url": plane.url, "enrolment_token": "preshared-enrolment-secret"},
    )
    stop = asyncio.Event()
    async with Agent(config) as running:
        task = asyncio.create_task(running.run(stop))
        yield
        stop.set()
        await asyncio.wait_for(task, 10)


async def _query(
    session: aiohttp.ClientSession, url: str, path: str, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    async with session.get(f"{url}{path}", params=params, headers=headers) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return body["data"]


async def _until_scraped(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
    expr = f'count_over_time(demo_requests_total{{code="200"}}[{WARM_S:g}s])'
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        data = await _query(session, url, "/api/v1/query", headers, query=expr)
        if data["result"] and float(data["result"][0]["value"][1]) >= WARM_S / SCRAPE_S - 1:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{url}: fewer than {WARM_S:g} s of samples after 40 s")


def _by_labels(data: dict[str, Any], keep: tuple[str, ...]) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for s in data["result"]:
        key = tuple(s["metric"].get(k, "") for k in keep)
        if "value" in s:
            out[key] = float(s["value"][1])
        else:
            out[key] = {t: float(v) for t, v in s["values"]}
    return out


QUERIES = [
    ("sum by (code) (rate(demo_requests_total[10s]))", ("code",)),
    ("sum(rate(demo_requests_total[10s]))", ()),
    ("histogram_quantile(0.9, sum by (le) (rate(demo_latency_seconds_bucket[10s])))", ()),
    ("sum(rate(demo_latency_seconds_sum[10s])) / sum(rate(demo_latency_seconds_count[10s]))", ()),
    ("max(demo_temperature)", ()),
]


async def test_same_answers_as_prometheus(
    plane: PromApiPlane, prometheus: str, agent: None
) -> None:
    async with aiohttp.ClientSession() as session:
        # Both sides hold samples from before the first window (Prometheus starts scraping
        # a few seconds after the agent: a window reaching before its first sample would be
        # extrapolated less, by design).
        await _until_scraped(session, prometheus, {})
        await _until_scraped(session, plane.url, plane.auth())
        at = round(time.time() - 2)
        for expr, keep in QUERIES:
            ours = await _query(
                session, plane.url, "/api/v1/query", plane.auth(), query=expr, time=at
            )
            theirs = await _query(session, prometheus, "/api/v1/query", {}, query=expr, time=at)
            assert ours["resultType"] == theirs["resultType"] == "vector"
            got, want = _by_labels(ours, keep), _by_labels(theirs, keep)
            assert want, f"Prometheus has no data for {expr}"
            assert got == pytest.approx(want, rel=0.03), expr

            params = {"query": expr, "start": at - 6, "end": at, "step": 2}
            ours = await _query(session, plane.url, "/api/v1/query_range", plane.auth(), **params)
            theirs = await _query(session, prometheus, "/api/v1/query_range", {}, **params)
            assert ours["resultType"] == theirs["resultType"] == "matrix"
            got, want = _by_labels(ours, keep), _by_labels(theirs, keep)
            assert set(got) == set(want), expr
            for key, points in want.items():
                assert list(got[key]) == list(points), (expr, "same steps")
                assert got[key] == pytest.approx(points, rel=0.03), expr
