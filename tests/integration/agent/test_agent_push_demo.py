"""Haetae's demo app pushes its state to a real agent, which reports it at once (an urgent
report), long before its next scheduled collection; and an agent with push disabled has no
such route."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from agent_peers import ENROLMENT_TOKEN, FakeControlPlane, Serve

from agent import Agent, AgentConfig
from haetae.demo_app import create_demo_app


def _config(tmp_path: Path, cp_url: str, **extra: object) -> AgentConfig:
    return AgentConfig(
        agent_id="web-1",
        interval_s=3600,  # one collection at the start, then only pushes can report
        state_dir=tmp_path / "state",
        collectors=[],
        http={"host": "127.0.0.1", "port": 0},
        control_plane={"url": cp_url, "enrolment_token": ENROLMENT_TOKEN},
        **extra,  # type: ignore[arg-type]
    )


async def test_the_demo_app_pushes_a_state_change_reported_at_once(
    control_plane: tuple[FakeControlPlane, str], serve: Serve, tmp_path: Path
) -> None:
    cp, cp_url = control_plane
    stop = asyncio.Event()
    async with Agent(_config(tmp_path, cp_url)) as agent:
        run = asyncio.create_task(agent.run(stop))
        await cp.wait_for(1)  # the start-up collection
        demo_url = await serve(
            create_demo_app(
                generate_traffic=False, push_url=f"http://127.0.0.1:{agent.http_port}/v1/push"
            )
        )
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{demo_url}/demo/state", json={"state": "failing", "value": 3}) as resp,
        ):
            assert resp.status == 200
        await cp.wait_for(2, within_s=5)
        urgent = cp.stored[1]
        assert urgent["urgent"] is True
        values = {s["name"]: s["value"] for s in urgent["samples"]}
        assert values == {"demo_state": 2.0, "demo_value": 3.0}
        assert all(s["ts"] >= cp.stored[0]["collected_at"] for s in urgent["samples"])
        assert urgent["collectors"] == [
            {"name": "push", "ok": True, "duration_s": 0.0, "samples": 2, "error": None}
        ]
        stop.set()
        await run


async def test_push_can_be_turned_off(
    control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    _, cp_url = control_plane
    async with Agent(_config(tmp_path, cp_url, push={"enabled": False})) as agent:
        assert agent.push is None
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{agent.http_port}/v1/push", data=b"a 1\n") as resp,
        ):
            assert resp.status == 413  # no route of the agent takes a body
