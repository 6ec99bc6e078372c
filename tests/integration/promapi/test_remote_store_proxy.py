"""Queries reaching past local retention go to ``promapi.remote_read_url`` (a stand-in for
VictoriaMetrics' Prometheus API here) with the same parameters; recent ones stay local."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from promapi_support import PromApiPlane, make_config
from tests_support import free_port

from control_plane.app import create_app

REMOTE_ANSWER = {
    "status": "success",
    "data": {"resultType": "matrix", "result": [{"metric": {"from": "remote"}, "values": []}]},
}


class StandIn:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], str | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        self.calls.append((request.path, params, request.headers.get("Authorization")))
        return web.json_response(REMOTE_ANSWER)


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandIn, str]]:
    remote = StandIn()
    app = web.Application()
    app.router.add_post("/vm/api/v1/{endpoint}", remote.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield remote, f"http://127.0.0.1:{port}/vm"
    await runner.cleanup()


async def _plane(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    db_dsn: str,
    tmp_path: Path,
    url: str,
) -> PromApiPlane:
    config = make_config(
        db_dsn,
        tmp_path,
        retention={"retention_days": 1},
        promapi={"remote_read_url": url, "remote_timeout_s": 5.0},
    )
    client = await aiohttp_client(create_app(config))
    return PromApiPlane(client, (tmp_path / "admin.token").read_text().strip(), config)


async def test_old_ranges_are_answered_by_the_remote_store(
    db_dsn: str, aiohttp_client: Any, tmp_path: Path, stand_in: tuple[StandIn, str]
) -> None:
    remote, url = stand_in
    plane = await _plane(aiohttp_client, db_dsn, tmp_path, url)
    now = time.time()
    old = {"query": "sum(rate(x[5m]))", "start": now - 3 * 86400, "end": now, "step": "1h"}
    status, body = await plane.get("/api/v1/query_range", **old)
    assert (status, body) == (200, REMOTE_ANSWER)
    [(path, params, auth)] = remote.calls
    assert path == "/vm/api/v1/query_range"
    assert params == {k: str(v) for k, v in old.items()}
    assert auth is None  # Haetae's own token is not passed on

    status, body = await plane.get("/api/v1/query", query="up", time=now - 2 * 86400)
    assert (status, body) == (200, REMOTE_ANSWER)
    assert remote.calls[-1][0] == "/vm/api/v1/query"

    # Inside retention: answered here (no data, so an empty vector), the remote not asked.
    status, body = await plane.get("/api/v1/query", query="up", time=now - 3600)
    assert body["data"] == {"resultType": "vector", "result": []}
    assert len(remote.calls) == 2


async def test_unreachable_remote_store_is_unavailable(
    db_dsn: str, aiohttp_client: Any, tmp_path: Path
) -> None:
    plane = await _plane(aiohttp_client, db_dsn, tmp_path, f"http://127.0.0.1:{free_port()}")
    status, body = await plane.get("/api/v1/query", query="up", time=time.time() - 2 * 86400)
    assert (status, body["errorType"]) == (503, "unavailable")
