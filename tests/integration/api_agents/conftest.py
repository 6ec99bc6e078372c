"""Fixtures for the agent and monitoring route tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from api_agents_support import Api, build_app

from control_plane.auth import Scope, TokenKind
from control_plane.auth.middleware import TOKEN_STORE
from control_plane.config import ControlPlaneConfig, HttpConfig, IngestConfig


@pytest.fixture
async def api(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], pool: asyncpg.Pool
) -> Api:
    config = ControlPlaneConfig(
        http=HttpConfig(max_body_bytes=64 * 1024, max_decompressed_bytes=256 * 1024),
        ingest=IngestConfig(flush_interval_s=0.01, max_samples_per_report=1000),
    )
    app = build_app(pool, config)
    client = await aiohttp_client(app)
    store = app[TOKEN_STORE]
    enrolment, _ = await store.create(TokenKind.ENROLMENT, "test enrolment")
    admin, _ = await store.create(TokenKind.ADMIN, "test reader", scopes=[Scope.READ])
    return Api(client, app, pool, enrolment, admin)
