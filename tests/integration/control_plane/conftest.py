"""A real control-plane app (the production factory) on a fresh database, via aiohttp's client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from control_plane.app import create_app
from control_plane.config import ControlPlaneConfig
from haetae.config import load


@dataclass
class ControlPlane:
    client: TestClient[Any, Any]
    admin_token: str
    config: ControlPlaneConfig

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


def make_config(
    db_dsn: str, redis_url: str | None, tmp_path: Path, **sections: Any
) -> ControlPlaneConfig:
    cfg = load(ControlPlaneConfig, "")
    update: dict[str, Any] = {
        "postgres": cfg.postgres.model_copy(update={"dsn": SecretStr(db_dsn)}),
        "redis": cfg.redis.model_copy(update={"url": SecretStr(redis_url) if redis_url else None}),
        "auth": cfg.auth.model_copy(
            update={
                "bootstrap_token_file": tmp_path / "admin.token",
                "enrolment_token": SecretStr("preshared-enrolment-secret"),
            }
        ),
    }
    for name, values in sections.items():
        update[name] = getattr(cfg, name).model_copy(update=values)
    return cfg.model_copy(update=update)


@pytest.fixture
async def control_plane(
    db_dsn: str,
    redis_url: str,
    tmp_path: Path,
    # After the database: fixtures are torn down in reverse, so the app stops before its
    # database is dropped.
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> ControlPlane:
    config = make_config(db_dsn, redis_url, tmp_path)
    client = await aiohttp_client(create_app(config))
    token = (tmp_path / "admin.token").read_text().strip()
    return ControlPlane(client, token, config)
