"""``promtool query instant|range|series|labels`` (Debian's prometheus 2.42) against Haetae.

promtool 2.42 has no ``--http.config.file`` (2.43 added it) and only ``query range`` takes
``--header``: range sends the bearer token itself; the other three go through a loopback proxy
that adds the header, as a data-source header in Grafana or an ingress would.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from promapi_support import PromApiPlane, store_series

from control_plane.appkeys import POOL

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian prometheus) missing")

T0 = float(int(time.time() // 60 * 60) - 1800)


async def _promtool(*args: str) -> tuple[int, str, str]:
    assert PROMTOOL is not None
    proc = await asyncio.create_subprocess_exec(
        PROMTOOL, "query", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def bearer_proxy(plane: PromApiPlane) -> AsyncIterator[str]:
    """A loopback proxy adding ``Authorization: Bearer <token>`` to what it passes on."""

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {"Authorization": f"Bearer {plane.admin_token}"}
        if request.content_type:
            headers["Content-Type"] = request.headers.get("Content-Type", "")
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, plane.url + request.rel_url.path_qs, data=body, headers=headers
            ) as resp,
        ):
            return web.Response(
                status=resp.status,
                body=await resp.read(),
                content_type=resp.content_type,
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _seed(plane: PromApiPlane) -> None:
    async with plane.client.app[POOL].acquire() as conn:
        for code, per_s in (("200", 3.0), ("500", 0.25)):
            pts = [(T0 + i * 15, per_s * i * 15) for i in range(61)]
            await store_series(conn, "app_requests_total", {"code": code}, pts)


async def test_promtool_instant_range_series_labels(plane: PromApiPlane, bearer_proxy: str) -> None:
    await _seed(plane)
    at = str(T0 + 600)
    rc, out, err = await _promtool(
        "instant", "-o", "json", "--time", at, bearer_proxy,
        "sum by (code) (rate(app_requests_total[2m]))",
    )  # fmt: skip
    assert rc == 0, err
    got = {s["metric"]["code"]: float(s["value"][1]) for s in json.loads(out)}
    assert got == {"200": pytest.approx(3.0), "500": pytest.approx(0.25)}

    # Range sends the token itself.
    rc, out, err = await _promtool(
        "range", "-o", "json", f"--header=Authorization: Bearer {plane.admin_token}",
        f"--start={T0 + 300}", f"--end={T0 + 600}", "--step=1m", plane.url,
        'rate(app_requests_total{code="500"}[1m])',
    )  # fmt: skip
    assert rc == 0, err
    [series] = json.loads(out)
    assert [t for t, _ in series["values"]] == [T0 + 300 + 60 * i for i in range(6)]
    assert [float(v) for _, v in series["values"]] == pytest.approx([0.25] * 6)

    rc, out, err = await _promtool(
        "series", "-o", "json", "--match", 'app_requests_total{code=~"5.."}', bearer_proxy
    )
    assert rc == 0, err
    assert json.loads(out) == [{"__name__": "app_requests_total", "agent": "web-1", "code": "500"}]

    rc, out, err = await _promtool("labels", "-o", "json", bearer_proxy, "code")
    assert rc == 0, err
    assert json.loads(out) == ["200", "500"]


async def test_promtool_without_a_token_reads_the_error(plane: PromApiPlane) -> None:
    rc, out, err = await _promtool("instant", plane.url, "up")
    assert rc != 0
    assert "bearer token" in (out + err)
