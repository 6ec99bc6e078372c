"""Pushed samples reach the rules at once: a real agent (its HTTP server, spool and reporter)
reporting to a real control plane, collecting only once an hour, so an alert that fires and
resolves within seconds can only have come through ``POST /v1/push`` and its urgent reports."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
from alerting_support import ENROLMENT, Plane, eventually

from agent.config import AgentConfig
from agent.service import Agent

PUSH_TOKEN = "push-secret"


async def test_pushed_samples_fire_and_resolve_without_waiting_for_a_collection(
    plane: Plane, tmp_path: Path
) -> None:
    resp = await plane.client.post(
        "/admin/alerts/rule",
        json={"name": "PushedHigh", "expr": "demo_value > 5"},
        headers=plane.admin(),
    )
    assert resp.status == 201, await resp.text()
    config = AgentConfig(
        agent_id="web-1",
        interval_s=3600,
        state_dir=tmp_path / "agent",
        collectors=[],
        control_plane={
            "url": str(plane.client.make_url("")).rstrip("/"),
            "enrolment_token": ENROLMENT,
        },
        http={"port": 0},
        push={"token": PUSH_TOKEN},
    )
    stop = asyncio.Event()
    async with Agent(config) as agent, aiohttp.ClientSession() as http:
        run = asyncio.create_task(agent.run(stop))
        try:
            url = f"http://127.0.0.1:{agent.http_port}/v1/push"
            auth = {"Authorization": f"Bearer {PUSH_TOKEN}"}

            async with http.post(url, data=b"demo_value 9\n") as r:
                assert r.status == 401
                assert r.content_type == "application/problem+json"
            async with http.post(url, data=b"demo_value{x} 9\n", headers=auth) as r:
                assert r.status == 400
                assert (await r.json())["field"] == "body"

            async def firing() -> list[dict[str, Any]]:
                return [a for a in await plane.active() if a["state"] == "firing"]

            started = time.monotonic()
            headers = auth | {"Content-Type": "text/plain; version=0.0.4"}
            async with http.post(url, data=b'demo_value{kind="x"} 9\n', headers=headers) as r:
                assert r.status == 202
                assert await r.json() == {"accepted": 1}
            (alert,) = await eventually(firing, within=5.0, every=0.02)
            fired_after = time.monotonic() - started
            assert alert["labels"]["kind"] == "x" and alert["value"] == 9.0

            started = time.monotonic()
            doc = {"samples": [{"name": "demo_value", "labels": {"kind": "x"}, "value": 1}]}
            async with http.post(url, json=doc, headers=auth) as r:
                assert r.status == 202

            async def cleared() -> bool:
                return not await plane.active()

            await eventually(cleared, within=5.0, every=0.02)
            resolved_after = time.monotonic() - started
            # An hour's interval: only the urgent reports can explain this (generously bounded
            # for a loaded test machine; the benchmark measures the real figures).
            assert fired_after < 3.0 and resolved_after < 3.0
            async with http.get(f"http://127.0.0.1:{agent.http_port}/metrics") as r:
                text = await r.text()
            assert "haetae_agent_urgent_reports_total 2.0" in text
            assert 'haetae_agent_push_requests_total{outcome="refused"} 2.0' in text
            assert agent.push is not None and agent.push.pending == 0
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await run
