"""Helpers for the alerting tests: a real control plane with fast alerting settings, agents
that report, and a hand-driven clock for the engine's timeline tests."""

from __future__ import annotations

import asyncio
import gzip
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from control_plane.config import ControlPlaneConfig
from haetae.config import load

ENROLMENT = "preshared-enrolment-secret"


def alerting_config(
    db_dsn: str, tmp_path: Path, rules_dir: Path | None, **alerting: Any
) -> ControlPlaneConfig:
    cfg = load(ControlPlaneConfig, "")
    values: dict[str, Any] = {
        "rules_dir": rules_dir,
        "warmup_s": 0.0,
        "eval_interval_s": 0.2,
        "min_eval_interval_s": 0.0,
        "rules_reload_s": 0.2,
    }
    values.update(alerting)
    return cfg.model_copy(
        update={
            "postgres": cfg.postgres.model_copy(update={"dsn": SecretStr(db_dsn)}),
            "auth": cfg.auth.model_copy(
                update={
                    "bootstrap_token_file": tmp_path / "admin.token",
                    "enrolment_token": SecretStr(ENROLMENT),
                }
            ),
            "ingest": cfg.ingest.model_copy(update={"flush_interval_s": 0.01}),
            "alerting": cfg.alerting.model_copy(update=values),
        }
    )


@dataclass
class Plane:
    client: TestClient[Any, Any]
    admin_token: str

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def enroll(self, agent_id: str) -> str:
        resp = await self.client.post(
            "/api/v1/agents/enroll",
            json={"agent_id": agent_id},
            headers={"Authorization": f"Bearer {ENROLMENT}"},
        )
        assert resp.status == 201, await resp.text()
        token: str = (await resp.json())["token"]
        return token

    async def report(
        self, agent_id: str, token: str, samples: list[tuple[str, dict[str, str], float]]
    ) -> None:
        doc = {
            "report_id": str(uuid.uuid4()),
            "collected_at": time.time(),
            "samples": [{"name": n, "labels": lb, "value": v} for n, lb, v in samples],
            "collectors": [{"name": "app", "ok": True, "duration_s": 0.01, "samples": 1}],
        }
        resp = await self.client.post(
            f"/api/v1/agents/{agent_id}/reports",
            data=gzip.compress(orjson.dumps(doc)),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Idempotency-Key": str(doc["report_id"]),
            },
        )
        assert resp.status == 200, await resp.text()

    async def active(self) -> list[dict[str, Any]]:
        resp = await self.client.get("/admin/monitoring/alerts", headers=self.admin())
        assert resp.status == 200, await resp.text()
        alerts: list[dict[str, Any]] = (await resp.json())["alerts"]
        return alerts


async def eventually(
    check: Callable[[], Awaitable[Any]], *, within: float = 10.0, every: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; its last value on success."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {value!r})")
        await asyncio.sleep(every)


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
