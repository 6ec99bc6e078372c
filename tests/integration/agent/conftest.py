"""Fixtures for the agent's integration tests: real HTTP peers on loopback (agent_peers.py)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from agent_peers import DemoApp, FakeControlPlane, Serve
from aiohttp import web


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(app)`` starts ``app`` on 127.0.0.1 and returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, port: int = 0) -> str:
        # A short shutdown timeout: some tests leave deliberately slow handlers running.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def control_plane(serve: Serve) -> tuple[FakeControlPlane, str]:
    cp = FakeControlPlane()
    return cp, await serve(cp.app())


@pytest.fixture
async def demo_app(serve: Serve) -> tuple[DemoApp, str]:
    demo = DemoApp()
    return demo, await serve(demo.app())


@pytest.fixture
def refused_url() -> str:
    """A loopback URL with nothing listening: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
