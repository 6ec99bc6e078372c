"""Fixtures for the alerting tests: a real control plane (the production factory) with a
rules folder of its own, on a fresh database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from alerting_support import Plane, alerting_config

from control_plane.app import create_app

FILE_RULES = """
groups:
  - name: from-file
    rules:
      - alert: FileRule
        expr: file_metric > 1
        labels: {severity: info}
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "file.yml").write_text(FILE_RULES)
    return folder


@pytest.fixture
async def plane(
    db_dsn: str,  # before aiohttp_client: the database outlives the app
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    tmp_path: Path,
    rules_dir: Path,
) -> Plane:
    client = await aiohttp_client(create_app(alerting_config(db_dsn, tmp_path, rules_dir)))
    return Plane(client, (tmp_path / "admin.token").read_text().strip())
