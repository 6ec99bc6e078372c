"""A real control plane for the fuzz tests: the production factory on its own database (cloned
from the migrated template) and the session's Redis, served by the hardened runner on a loopback
port from a thread of its own, so that hypothesis drives it with plain synchronous requests.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr
from tests_support import with_database

from control_plane.app import create_app
from control_plane.config import ControlPlaneConfig
from haetae.config import load
from haetae.web.server import HardenedAppRunner

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # /admin/incidents/{id}
    params: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.method} {self.template}"

    def path(self, values: dict[str, str]) -> str:
        """The template with each parameter replaced by its (already encoded) value."""
        return _PARAM.sub(lambda m: values[m[1]], self.template)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    retry_after: str | None


@dataclass
class LiveControlPlane:
    host: str
    port: int
    admin_token: str
    routes: list[Route]
    # Unhandled-error records the server logged (with their bounded stack traces).
    server_errors: list[logging.LogRecord] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)
    # Every kept-alive client connection, so teardown closes them (a socket left to the garbage
    # collector raises a ResourceWarning in whichever later test collects it).
    _opened: list[http.client.HTTPConnection] = field(default_factory=list)

    def close(self) -> None:
        for conn in self._opened:
            conn.close()
        self._opened.clear()
        self._local.conn = None

    def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None = None
    ) -> Answer:
        for attempt in range(2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=30
                )
                self._opened.append(conn)
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, ConnectionError):
                # The server closed a kept-alive connection (it does after protocol errors).
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
                continue
            if resp.will_close:
                conn.close()
                self._local.conn = None
            return Answer(
                resp.status,
                resp.getheader("Content-Type", ""),
                data,
                resp.getheader("Retry-After"),
            )
        raise AssertionError("unreachable")


def make_config(db_dsn: str, redis_url: str | None, tmp_path: Path) -> ControlPlaneConfig:
    cfg = load(ControlPlaneConfig, "")
    return cfg.model_copy(
        update={
            "postgres": cfg.postgres.model_copy(update={"dsn": SecretStr(db_dsn)}),
            "redis": cfg.redis.model_copy(
                update={"url": SecretStr(redis_url) if redis_url else None}
            ),
            "auth": cfg.auth.model_copy(
                update={
                    "bootstrap_token_file": tmp_path / "admin.token",
                    "enrolment_token": SecretStr("preshared-enrolment-secret"),
                }
            ),
        }
    )


class _ErrorCollector(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


class ServerThread:
    """An event loop on a thread; coroutines are run on it from the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def create_database(server_dsn: str, template: str) -> str:
    name = f"haetae_fuzz_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return name


async def drop_database(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def routes_of(app: Any) -> list[Route]:
    """Every route of the app (HEAD mirrors GET), read at test time so new routes are fuzzed."""
    out = []
    for route in app.router.routes():
        resource = route.resource
        if route.method in ("HEAD", "*") or resource is None:
            continue
        template = resource.canonical
        out.append(Route(route.method, template, tuple(m[1] for m in _PARAM.finditer(template))))
    return out


@pytest.fixture(scope="module")
def live_control_plane(
    pg_server_dsn: str, pg_template: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveControlPlane]:
    tmp_path = tmp_path_factory.mktemp("fuzz")
    thread = ServerThread()
    db = thread.run(create_database(pg_server_dsn, pg_template))
    app = create_app(make_config(with_database(pg_server_dsn, db), redis_url, tmp_path))
    runner = HardenedAppRunner(app, access_log=None, shutdown_timeout=1)

    async def start() -> int:
        await runner.setup()
        from aiohttp import web

        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    port = thread.run(start())
    live = LiveControlPlane(
        "127.0.0.1", port, (tmp_path / "admin.token").read_text().strip(), routes_of(app)
    )
    collector = _ErrorCollector(live.server_errors)
    logging.getLogger().addHandler(collector)
    try:
        yield live
    finally:
        live.close()
        logging.getLogger().removeHandler(collector)
        thread.run(runner.cleanup())
        thread.run(drop_database(pg_server_dsn, db))
        thread.close()
