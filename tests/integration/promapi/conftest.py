from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from promapi_support import PromApiPlane, make_config

from control_plane.app import create_app


@pytest.fixture
async def plane(
    db_dsn: str, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], tmp_path: Path
) -> PromApiPlane:
    # db_dsn first: the app (and its pool) close before the database is dropped.
    config = make_config(db_dsn, tmp_path)
    client = await aiohttp_client(create_app(config))
    token = (tmp_path / "admin.token").read_text().strip()
    return PromApiPlane(client, token, config)
