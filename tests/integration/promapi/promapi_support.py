"""A control plane for the Prometheus API tests, and samples written straight into storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from control_plane.config import ControlPlaneConfig
from control_plane.store.partitions import create_partitions, day_of
from haetae.config import load


@dataclass
class PromApiPlane:
    client: TestClient[Any, Any]
    admin_token: str
    config: ControlPlaneConfig

    @property
    def url(self) -> str:
        return str(self.client.make_url("/")).rstrip("/")

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def get(self, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
        resp = await self.client.get(path, params=params, headers=self.auth())
        return resp.status, await resp.json()


def make_config(db_dsn: str, tmp_path: Path, **sections: Any) -> ControlPlaneConfig:
    cfg = load(ControlPlaneConfig, "")
    update: dict[str, Any] = {
        "postgres": cfg.postgres.model_copy(update={"dsn": SecretStr(db_dsn)}),
        "auth": cfg.auth.model_copy(
            update={
                "bootstrap_token_file": tmp_path / "admin.token",
                "enrolment_token": SecretStr("preshared-enrolment-secret"),
            }
        ),
        # No rule files: the tests' series are theirs alone.
        "alerting": cfg.alerting.model_copy(update={"rules_dir": None}),
    }
    for name, values in sections.items():
        update[name] = getattr(cfg, name).model_copy(update=values)
    return cfg.model_copy(update=update)


async def store_series(
    conn: asyncpg.Connection,
    name: str,
    labels: Mapping[str, str],
    points: Iterable[tuple[float, float]],
    *,
    agent: str = "web-1",
) -> int:
    """One series and its points, written as ingest would have (COPY into the samples)."""
    key = orjson.dumps(dict(sorted(labels.items()))).decode()
    series_id: int = await conn.fetchval(
        "INSERT INTO series (agent_id, name, labels, labels_key) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (agent_id, name, labels_key) DO UPDATE SET name = EXCLUDED.name"
        " RETURNING series_id",
        agent,
        name,
        dict(labels),
        key,
    )
    rows = [(series_id, dt.datetime.fromtimestamp(t, dt.UTC), v) for t, v in points]
    await create_partitions(conn, sorted({day_of(r[1].timestamp()) for r in rows}))
    await conn.copy_records_to_table("samples", records=rows, columns=["series_id", "ts", "value"])
    return series_id
