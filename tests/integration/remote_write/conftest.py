"""A control plane with the remote-write route, an enrolment and a read-scoped admin token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from remote_write_support import Plane, build_app

from control_plane.auth import Scope, TokenKind
from control_plane.auth.middleware import TOKEN_STORE
from control_plane.config import ControlPlaneConfig, IngestConfig

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def ingest_config() -> IngestConfig:
    return IngestConfig(flush_interval_s=0.01, max_samples_per_report=5000)


@pytest.fixture
async def plane(
    aiohttp_client: AiohttpClient, pool: asyncpg.Pool, ingest_config: IngestConfig
) -> Plane:
    app = build_app(pool, ControlPlaneConfig(ingest=ingest_config))
    client = await aiohttp_client(app)
    store = app[TOKEN_STORE]
    enrolment, _ = await store.create(TokenKind.ENROLMENT, "test enrolment")
    admin, _ = await store.create(TokenKind.ADMIN, "test reader", scopes=[Scope.READ])
    return Plane(client, app, pool, enrolment, admin)
