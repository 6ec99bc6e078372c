"""The production app with ``forward.url`` set: an agent's reports reach VictoriaMetrics, and
the control plane's /metrics shows the forwarder."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from forward_support import wait_for
from pydantic import SecretStr
from victoria_support import VictoriaMetrics

from control_plane.app import create_app
from control_plane.config import ControlPlaneConfig
from control_plane.forward import FORWARDER, wire
from haetae.config import load

ENROLMENT = "preshared-enrolment-secret"


def config(db_dsn: str, tmp_path: Path, write_url: str) -> ControlPlaneConfig:
    cfg = load(ControlPlaneConfig, "")
    return cfg.model_copy(
        update={
            "postgres": cfg.postgres.model_copy(update={"dsn": SecretStr(db_dsn)}),
            "auth": cfg.auth.model_copy(
                update={
                    "bootstrap_token_file": tmp_path / "admin.token",
                    "enrolment_token": SecretStr(ENROLMENT),
                }
            ),
            "alerting": cfg.alerting.model_copy(update={"enabled": False}),
            "forward": cfg.forward.model_validate(
                {"url": write_url, "external_labels": {"cluster": "t"}, "poll_interval_s": 0.1}
            ),
        }
    )


async def test_agent_reports_are_forwarded_by_the_control_plane(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    db_dsn: str,
    tmp_path: Path,
    victoria_metrics: VictoriaMetrics,
) -> None:
    app = create_app(config(db_dsn, tmp_path, victoria_metrics.write_url))
    client = await aiohttp_client(app)
    resp = await client.post(
        "/api/v1/agents/enroll",
        json={"agent_id": "host-1"},
        headers={"Authorization": f"Bearer {ENROLMENT}"},
    )
    assert resp.status == 201, await resp.text()
    token = (await resp.json())["token"]
    at = round(time.time()) - 30.0
    for k in range(3):
        body = {
            "report_id": str(uuid.uuid4()),
            "seq": k + 1,
            "collected_at": at + k,
            "samples": [
                {"name": "fw_app", "labels": {"i": str(i)}, "value": 10 * k + i} for i in range(4)
            ],
        }
        resp = await client.post(
            "/api/v1/agents/host-1/reports", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 200, await resp.text()

    async def outbox_empty() -> bool:
        return await app[FORWARDER].outbox.stats() == (0, 0.0)

    await wait_for(outbox_empty, what="the reports to be forwarded")
    got = await victoria_metrics.export('{__name__="fw_app"}')
    assert got == {
        (("__name__", "fw_app"), ("agent", "host-1"), ("cluster", "t"), ("i", str(i))): [
            (round((at + k) * 1000), 10.0 * k + i) for k in range(3)
        ]
        for i in range(4)
    }
    await app[FORWARDER].refresh()
    admin = (tmp_path / "admin.token").read_text().strip()
    text = await (await client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})).text()
    assert 'haetae_forward_samples_total{outcome="sent"} 12.0' in text
    assert "haetae_forward_pending_samples 0.0" in text
    assert "haetae_forward_lag_seconds 0.0" in text


async def test_remote_write_in_is_forwarded_out(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    db_dsn: str,
    tmp_path: Path,
    victoria_metrics: VictoriaMetrics,
) -> None:
    """A Prometheus-style sender (a virtual agent) writes into Haetae; the samples reach the
    long-term store like an agent's."""
    app = create_app(config(db_dsn, tmp_path, victoria_metrics.write_url))
    client = await aiohttp_client(app)
    resp = await client.post(
        "/api/v1/agents/enroll",
        json={"agent_id": "prom-1"},
        headers={"Authorization": f"Bearer {ENROLMENT}"},
    )
    assert resp.status == 201, await resp.text()
    token = (await resp.json())["token"]
    at_ms = (round(time.time()) - 20) * 1000
    parts: list[bytes] = []
    labels = {7: wire.encode_labels({"__name__": "fw_rw", "job": "node", "instance": "h:9100"})}
    wire.SampleEncoder().encode(
        [7, 7], [at_ms / 1000, at_ms / 1000 + 15], [1.0, 2.0], labels, parts
    )
    resp = await client.post(
        "/api/v1/write",
        data=wire.write_request(parts),
        headers={**wire.HEADERS, "Authorization": f"Bearer {token}"},
    )
    assert resp.status in (200, 204), await resp.text()

    async def outbox_empty() -> bool:
        return await app[FORWARDER].outbox.stats() == (0, 0.0)

    await wait_for(outbox_empty, what="the remote-written samples to be forwarded")
    got = await victoria_metrics.export('{__name__="fw_rw"}')
    key = (
        ("__name__", "fw_rw"),
        ("agent", "prom-1"),
        ("cluster", "t"),
        ("instance", "h:9100"),
        ("job", "node"),
    )
    assert got == {key: [(at_ms, 1.0), (at_ms + 15_000, 2.0)]}
