"""The whole agent: scheduled cycles, reports with every collector's samples, /metrics and
/health, an outage with recovery, and a clean stop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from agent_peers import ENROLMENT_TOKEN, DemoApp, FakeControlPlane, Serve

from agent import Agent, AgentConfig, run_agent


def _config(tmp_path: Path, cp_url: str, app_url: str | None = None, **extra: Any) -> AgentConfig:
    targets: dict[str, Any] = {}
    if app_url is not None:
        targets = {
            "process": {"pid": os.getpid()},
            "app": {"metrics_url": f"{app_url}/metrics"},
            "health": {"url": f"{app_url}/health"},
        }
    return AgentConfig(
        agent_id="web-1",
        interval_s=1.0,
        state_dir=tmp_path / "state",
        http={"host": "127.0.0.1", "port": 0},
        control_plane={"url": cp_url, "enrolment_token": ENROLMENT_TOKEN, "request_timeout_s": 1},
        **targets,
        **extra,
    )


async def _get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


async def test_agent_reports_on_schedule_and_serves_metrics_and_health(
    control_plane: tuple[FakeControlPlane, str], demo_app: tuple[DemoApp, str], tmp_path: Path
) -> None:
    cp, cp_url = control_plane
    _, app_url = demo_app
    stop = asyncio.Event()
    async with Agent(_config(tmp_path, cp_url, app_url)) as agent:
        task = asyncio.create_task(agent.run(stop))
        await cp.wait_for(3, within_s=6)

        first = cp.stored[0]
        names = {s["name"] for s in first["samples"]}
        assert {
            "haetae_host_cpu_usage_ratio",
            "haetae_process_up",
            "haetae_app_scrape_up",
            "demo_requests_total",
            "demo_latency_seconds_bucket",
            "haetae_app_health_up",
        } <= names
        assert [(c["name"], c["ok"]) for c in first["collectors"]] == [
            ("host", True),
            ("process", True),
            ("app", True),
            ("health", True),
        ]
        # After the immediate first cycle, cycles fall on whole multiples of the interval.
        for later in cp.stored[1:]:
            ts = later["collected_at"]
            assert abs(ts - round(ts)) < 0.25, ts
        step = cp.stored[2]["collected_at"] - cp.stored[1]["collected_at"]
        assert step == pytest.approx(1.0, abs=0.2)

        base = f"http://127.0.0.1:{agent.http_port}"
        status, ctype, text = await _get(f"{base}/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        for line in (
            'haetae_agent_collector_success{collector="host"} 1.0',
            'haetae_agent_collector_success{collector="app"} 1.0',
            "haetae_agent_spool_pending_reports ",
            "haetae_agent_spool_dropped_reports_total 0.0",
            "haetae_agent_reports_sent_total ",
            'haetae_agent_reports_failed_total{reason="server_error"} 0.0',
            "haetae_agent_last_report_success_timestamp_seconds ",
            "haetae_agent_process_resident_memory_bytes ",
            'haetae_agent_info{agent_id="web-1",version=',
        ):
            assert line in text, line

        status, ctype, text = await _get(f"{base}/health")
        assert status == 200 and ctype == "application/health+json"
        assert '"status":"pass"' in text

        stop.set()
        await asyncio.wait_for(task, 3)
    assert cp.duplicates == 0


async def test_outage_is_spooled_reported_in_health_and_replayed(
    serve: Serve, refused_url: str, tmp_path: Path
) -> None:
    port = int(refused_url.rsplit(":", 1)[1])
    stop = asyncio.Event()
    async with Agent(_config(tmp_path, refused_url)) as agent:
        task = asyncio.create_task(agent.run(stop))
        async with asyncio.timeout(8):
            while agent.spool.pending_count < 4:  # noqa: ASYNC110  # polling the spool
                await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{agent.http_port}"
        status, _, text = await _get(f"{base}/health")
        assert status == 200 and '"status":"warn"' in text and "reports waiting" in text

        cp = FakeControlPlane()
        await serve(cp.app(), port)  # the control plane comes back on the same address
        await cp.wait_for(5, within_s=8)
        stop.set()
        await asyncio.wait_for(task, 6)
    assert cp.seqs == sorted(cp.seqs) and len(set(cp.seqs)) == len(cp.seqs)
    assert cp.seqs == list(range(1, len(cp.seqs) + 1))  # nothing lost along the way
    assert cp.duplicates == 0


async def test_run_agent_stops_on_event_and_keeps_the_spool(
    refused_url: str, tmp_path: Path
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_agent(_config(tmp_path, refused_url), stop=stop))
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(task, 5)
    state = tmp_path / "state"
    assert state.stat().st_mode & 0o077 == 0
    assert list((state / "spool").glob("*.seg"))
    assert (state / "report.seq").exists()
