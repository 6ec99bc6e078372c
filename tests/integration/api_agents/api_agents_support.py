"""A minimal control-plane app for the agent and monitoring route tests (the production factory
will replace it): problem + auth middlewares, the pool, tokens, ingest and maintenance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from control_plane.api import agents, monitoring
from control_plane.appkeys import CONFIG, METRICS, POOL
from control_plane.auth import TokenStore, auth_middleware
from control_plane.auth.middleware import TOKEN_STORE
from control_plane.config import ControlPlaneConfig
from control_plane.ingest import ingest_ctx
from control_plane.maintenance import maintenance_ctx
from control_plane.telemetry import ControlPlaneMetrics
from haetae.web import problem_middleware
from haetae.web.bodies import HANDLER_ARGS


@dataclass
class Api:
    client: TestClient[Any, Any]
    app: web.Application
    pool: asyncpg.Pool
    enrolment_token: str
    admin_token: str

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def metrics(self) -> ControlPlaneMetrics:
        return self.app[METRICS]

    async def enroll(self, agent_id: str, **extra: Any) -> str:
        resp = await self.client.post(
            "/api/v1/agents/enroll",
            json={"agent_id": agent_id, **extra},
            headers=self.bearer(self.enrolment_token),
        )
        assert resp.status == 201, await resp.text()
        token: str = (await resp.json())["token"]
        return token


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
    return app
