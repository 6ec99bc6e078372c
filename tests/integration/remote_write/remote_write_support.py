"""Building remote-write requests with the protobuf library (what Prometheus's gogo code emits
for these messages) and a minimal control plane serving the remote-write and agent routes."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import cramjam
from aiohttp import web
from aiohttp.test_utils import TestClient

from control_plane.api import agents, monitoring, remote_write
from control_plane.appkeys import CONFIG, METRICS, POOL
from control_plane.auth import TokenStore, auth_middleware
from control_plane.auth.middleware import TOKEN_STORE
from control_plane.config import ControlPlaneConfig
from control_plane.ingest import ingest_ctx
from control_plane.ingest.prompb import remote_pb2 as pb
from control_plane.maintenance import maintenance_ctx
from control_plane.telemetry import ControlPlaneMetrics
from haetae.web import problem_middleware
from haetae.web.bodies import HANDLER_ARGS

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

# (labels including __name__, [(value, timestamp ms), ...])
SeriesSpec = tuple[Mapping[str, str], Sequence[tuple[float, int]]]


def now_ms() -> int:
    return int(time.time() * 1000)


def write_request(series: Iterable[SeriesSpec]) -> pb.WriteRequest:
    req = pb.WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for name, value in labels.items():
            ts.labels.add(name=name, value=value)
        for sample_value, ms in samples:
            ts.samples.add(value=sample_value, timestamp=ms)
    return req


def snappy(raw: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(raw))


def body(series: Iterable[SeriesSpec]) -> bytes:
    return snappy(write_request(series).SerializeToString())


def same_value(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@dataclass
class Plane:
    client: TestClient[Any, Any]
    app: web.Application
    pool: asyncpg.Pool
    enrolment_token: str
    admin_token: str

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def enroll(self, agent_id: str) -> str:
        resp = await self.client.post(
            "/api/v1/agents/enroll",
            json={"agent_id": agent_id},
            headers=self.bearer(self.enrolment_token),
        )
        assert resp.status == 201, await resp.text()
        token: str = (await resp.json())["token"]
        return token

    async def write(self, token: str, data: bytes, **headers: str) -> Any:
        return await self.client.post(
            "/api/v1/write", data=data, headers={**HEADERS, **self.bearer(token), **headers}
        )

    async def sample_count(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM samples"))

    async def series_count(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM series"))


def build_app(pool: asyncpg.Pool, config: ControlPlaneConfig) -> web.Application:
    app = web.Application(
        middlewares=[problem_middleware, auth_middleware], handler_args=HANDLER_ARGS
    )
    app[CONFIG] = config
    app[POOL] = pool
    app[METRICS] = ControlPlaneMetrics()
    app[TOKEN_STORE] = TokenStore(pool)
    app.cleanup_ctx.extend([maintenance_ctx, ingest_ctx])
    agents.setup_routes(app)
    monitoring.setup_routes(app)
    remote_write.setup_routes(app)
    return app
