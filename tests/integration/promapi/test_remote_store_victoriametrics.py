"""Past retention, through a real VictoriaMetrics (Debian's ``victoria-metrics``): samples two
days old, imported into it, come back through Haetae's ``/api/v1/query`` and ``query_range``
(Haetae keeps one day here)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from promapi_support import PromApiPlane, make_config
from tests_support import free_port

from control_plane.app import create_app

VM = shutil.which("victoria-metrics")
pytestmark = pytest.mark.skipif(VM is None, reason="victoria-metrics (Debian) missing")

# Two days ago, on a whole minute: older than the one day Haetae keeps in this test.
OLD = float(int(time.time() // 60 * 60) - 2 * 86400)


@pytest.fixture
async def victoria(tmp_path: Path) -> AsyncIterator[str]:
    assert VM is not None
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        VM,
        f"-storageDataPath={tmp_path / 'vm'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-loggerLevel=ERROR",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(150):
                with contextlib.suppress(aiohttp.ClientError):
                    async with s.get(f"{base}/health") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.2)
            # A counter at 1 per second, a point a minute, for ten minutes.
            lines = "".join(
                f'vm_requests_total{{code="200"}} {60.0 * i} {int((OLD + 60 * i) * 1000)}\n'
                for i in range(11)
            )
            async with s.post(f"{base}/api/v1/import/prometheus", data=lines) as r:
                assert r.status == 204, await r.text()
            async with s.get(f"{base}/internal/force_flush") as r:
                assert r.status == 200
        yield base
    finally:
        proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 30)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


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
