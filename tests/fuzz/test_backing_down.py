"""While PostgreSQL is unreachable, every /admin/* route answers 503 with Retry-After (never a
500), and answers again once it is back. The control plane talks to PostgreSQL through a TCP
proxy that the test cuts: open connections drop and new ones are refused, as in an outage."""

from __future__ import annotations

import asyncio
import glob
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from live_server import create_database, drop_database, make_config, routes_of
from tests_support import CuttableProxy

from control_plane.app import create_app


def unix_socket_of(dsn: str) -> str | None:
    """The PostgreSQL server's unix socket for a ``?host=/dir`` DSN, else None (a TCP DSN)."""
    hosts = parse_qs(urlsplit(dsn).query).get("host")
    if not hosts or not hosts[0].startswith("/"):
        return None
    found = glob.glob(os.path.join(hosts[0], ".s.PGSQL.*"))
    return found[0] if found else None


@pytest.fixture
async def cut_able_control_plane(
    pg_server_dsn: str, pg_template: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], CuttableProxy, str]]:
    db = await create_database(pg_server_dsn, pg_template)
    sock = unix_socket_of(pg_server_dsn)
    parts = urlsplit(pg_server_dsn)
    proxy = CuttableProxy(f"unix://{sock}" if sock else f"redis://{parts.hostname}:{parts.port}")
    await proxy.start()
    user = parts.username or "postgres"
    password = f":{parts.password}" if parts.password else ""
    dsn = f"postgresql://{user}{password}@127.0.0.1:{proxy.port}/{db}"
    config = make_config(dsn, redis_url, tmp_path)
    config = config.model_copy(
        update={
            "postgres": config.postgres.model_copy(
                update={"connect_timeout_s": 1.0, "command_timeout_s": 2.0, "pool_min_size": 1}
            )
        }
    )
    app = create_app(config)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, proxy, (tmp_path / "admin.token").read_text().strip()
    finally:
        proxy.restore()
        # Bounded, naming the step: a shutdown that hangs after an outage is a finding too
        # (seen once in ~16 runs under load, not reproduced since).
        for step, done in (
            ("control plane shutdown", client.close()),
            ("proxy stop", proxy.stop()),
            ("drop database", drop_database(pg_server_dsn, db)),
        ):
            try:
                await asyncio.wait_for(done, 20)
            except TimeoutError:
                pytest.fail(f"{step} did not finish within 20 s after the outage")


async def test_admin_routes_answer_503_with_retry_after_while_postgres_is_down(
    cut_able_control_plane: tuple[TestClient[web.Request, web.Application], CuttableProxy, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, proxy, token = cut_able_control_plane
    auth = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/admin/tokens", headers=auth)).status == 200

    proxy.cut()
    admin_routes = [r for r in routes_of(client.app) if r.template.startswith("/admin/")]
    assert len(admin_routes) > 20
    answers: dict[str, int] = {}
    with caplog.at_level(logging.WARNING):
        for route in admin_routes:
            path = route.path({p: "1" for p in route.params})
            resp = await client.request(route.method, path, headers=auth, json={})
            answers[str(route)] = resp.status
            assert resp.status < 500 or resp.status == 503, (str(route), await resp.text())
            if resp.status == 503:
                assert resp.content_type == "application/problem+json"
                assert int(resp.headers["Retry-After"]) > 0
    # Routes that read PostgreSQL (others may answer from memory, or refuse the body first).
    for name in (
        "GET /admin/tokens",
        "GET /admin/incidents",
        "GET /admin/alerts/history",
        "GET /admin/oncall/users",
    ):
        assert answers[name] == 503, (name, answers)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an unhandled error"

    proxy.restore()
    for _ in range(50):
        resp = await client.get("/admin/tokens", headers=auth)
        if resp.status == 200:
            break
        await asyncio.sleep(0.2)
    assert resp.status == 200


@pytest.fixture
async def redis_cut_control_plane(
    db_dsn: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], CuttableProxy, str]]:
    proxy = CuttableProxy(redis_url)
    await proxy.start()
    config = make_config(db_dsn, proxy.url, tmp_path)
    config = config.model_copy(
        update={
            "redis": config.redis.model_copy(
                update={"socket_timeout_s": 0.5, "pool_timeout_s": 0.5}
            )
        }
    )
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(create_app(config)))
    await client.start_server()
    try:
        yield client, proxy, (tmp_path / "admin.token").read_text().strip()
    finally:
        proxy.restore()
        for step, done in (("control plane shutdown", client.close()), ("proxy", proxy.stop())):
            try:
                await asyncio.wait_for(done, 20)
            except TimeoutError:
                pytest.fail(f"{step} did not finish within 20 s after the outage")


async def test_no_route_answers_500_while_redis_is_down(
    redis_cut_control_plane: tuple[TestClient[web.Request, web.Application], CuttableProxy, str],
) -> None:
    client, proxy, token = redis_cut_control_plane
    auth = {"Authorization": f"Bearer {token}"}
    proxy.cut()
    answers: dict[str, int] = {}
    for route in routes_of(client.app):
        path = route.path({p: "1" if route.method != "DELETE" else "424242" for p in route.params})
        resp = await client.request(route.method, path, headers=auth, json={"url": "x"})
        answers[str(route)] = resp.status
        # Redis backs caches and the analysis queue: a route that needs it passes its outage
        # on as a 503 to retry; a cache degrades to a miss.
        assert resp.status < 500 or resp.status == 503, (str(route), await resp.text())
        if resp.status == 503:
            assert resp.content_type in ("application/problem+json", "application/health+json")
            assert resp.content_type != "application/problem+json" or resp.headers["Retry-After"]
    assert answers["GET /admin/tokens"] == 200  # PostgreSQL-only routes are unaffected
    # The analysis queue lives in Redis: enqueueing cannot succeed, and says so.
    resp = await client.post(
        "/api/v1/analyze/async", headers=auth, json={"url": "https://93.184.216.34/page"}
    )
    assert resp.status == 503, await resp.text()
    assert int(resp.headers["Retry-After"]) > 0
