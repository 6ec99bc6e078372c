"""Past retention, through a real VictoriaMetrics (Debian's ``victoria-metrics``): samples two
days old, imported into it, come back through Haetae's ``/api/v1/query`` and ``query_range``
(Haetae keeps one day here)."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from promapi_support import PromApiPlane, make_config
from victoria_support import VM_BINARY, VictoriaMetrics

from control_plane.app import create_app

pytestmark = pytest.mark.skipif(
    shutil.which(VM_BINARY) is None, reason="victoria-metrics (Debian) missing"
)

# Two days ago, on a whole minute: older than the one day Haetae keeps in this test.
OLD = float(int(time.time() // 60 * 60) - 2 * 86400)


@pytest.fixture
async def victoria(tmp_path: Path) -> AsyncIterator[str]:
    vm = VictoriaMetrics(tmp_path / "vm")
    await vm.start()
    try:
        async with aiohttp.ClientSession() as s:
            # A counter at 1 per second, a point a minute, for ten minutes.
            lines = "".join(
                f'vm_requests_total{{code="200"}} {60.0 * i} {int((OLD + 60 * i) * 1000)}\n'
                for i in range(11)
            )
            async with s.post(f"{vm.base}/api/v1/import/prometheus", data=lines) as r:
                assert r.status == 204, await r.text()
            async with s.get(f"{vm.base}/internal/force_flush") as r:
                assert r.status == 200
        yield vm.base
    finally:
        await vm.stop()


async def test_old_ranges_come_from_victoriametrics(
    db_dsn: str, aiohttp_client: Any, tmp_path: Path, victoria: str
) -> None:
    config = make_config(
        db_dsn,
        tmp_path,
        retention={"retention_days": 1},
        promapi={"remote_read_url": victoria},
    )
    client = await aiohttp_client(create_app(config))
    plane = PromApiPlane(client, (tmp_path / "admin.token").read_text().strip(), config)

    status, body = await plane.get(
        "/api/v1/query", query="rate(vm_requests_total[5m])", time=OLD + 480
    )
    assert status == 200, body
    [sample] = body["data"]["result"]
    assert sample["metric"] == {"code": "200"}
    assert float(sample["value"][1]) == pytest.approx(1.0)

    status, body = await plane.get(
        "/api/v1/query_range", query="vm_requests_total", start=OLD, end=OLD + 600, step=120
    )
    assert status == 200, body
    [series] = body["data"]["result"]
    assert [(t, float(v)) for t, v in series["values"]] == [
        (OLD + 120 * i, 120.0 * i) for i in range(6)
    ]
