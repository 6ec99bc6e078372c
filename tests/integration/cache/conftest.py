"""Layered caches against the real Redis of the test session (fixture ``redis_url``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from cache_support import MakeCache
from pydantic import SecretStr

from control_plane.app import create_app
from control_plane.config import ControlPlaneConfig
from haetae.cache import CachePolicy, L1Cache, LayeredCache, RedisL2
from haetae.config import load


@pytest.fixture
async def make_cache(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[MakeCache]:
    """Build LayeredCaches on their own clients (each like a separate process); closes them."""
    made: list[LayeredCache] = []

    async def make(
        policy: CachePolicy | None = None, max_entries: int = 1000, url: str | None = None
    ) -> LayeredCache:
        cache = LayeredCache(
            L1Cache(max_entries),
            RedisL2(aioredis.Redis.from_url(url or redis_url)),
            policy=policy,
        )
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.aclose()
        assert cache.l2 is not None
        await cache.l2.aclose()


@dataclass
class CachePlane:
    client: TestClient[Any, Any]
    admin_token: str
    app: web.Application

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


@pytest.fixture
async def cache_plane(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    db_dsn: str,
    redis_url: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> CachePlane:
    """The real control-plane app (production factory) with a warm-up set configured."""
    cfg = load(ControlPlaneConfig, "")
    config = cfg.model_copy(
        update={
            "postgres": cfg.postgres.model_copy(update={"dsn": SecretStr(db_dsn)}),
            "redis": cfg.redis.model_copy(update={"url": SecretStr(redis_url)}),
            "auth": cfg.auth.model_copy(update={"bootstrap_token_file": tmp_path / "admin.token"}),
            "cache": cfg.cache.model_copy(
                update={"warmup_sets": {"front": ["page:home", "page:about"]}}
            ),
        }
    )
    app = create_app(config)
    client = await aiohttp_client(app)
    return CachePlane(client, (tmp_path / "admin.token").read_text().strip(), app)
