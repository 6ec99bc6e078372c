"""The incident page in Chromium at phone width (Debian ``chromium`` driven by Playwright): an
incident of three alerts with their recent series, read in Seoul's time zone; times local and
relative, the graphs drawn, nothing wider than the phone; acknowledged by name, resolved after
the confirmation. Screenshots land in the test's directory (and HAETAE_SCREENSHOTS if set)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from control_plane.alerting.incidents import open_incident, record
from control_plane.app import create_app
from control_plane.config import (
    ControlPlaneConfig,
    EscalationLevelConfig,
    EscalationPolicyConfig,
    NotifyConfig,
    ReceiverConfig,
)
from haetae.config import load

CHROMIUM = shutil.which("chromium")
PHONE = {"width": 390, "height": 844}
ALERTS = [
    (
        "HighLatencyP95",
        "p95 request latency on local-demo is 2.78s",
        2.7795454545454534,
        "histogram_quantile(0.95, sum by (agent, le) "
        "(rate(demo_http_request_duration_seconds_bucket[30s]))) > 2",
    ),
    (
        "HighErrorRate",
        "5xx ratio on local-demo is 19.87%",
        0.1987,
        'sum by (agent) (rate(demo_http_requests_total{status=~"5.."}[30s])) '
        "/ sum by (agent) (rate(demo_http_requests_total[30s])) > 0.05",
    ),
    ("CacheHitRatioDrop", "Cache demo (l1) hit ratio on local-demo fell to 31.2%", 0.312, ""),
]


def _config(db_dsn: str, tmp_path: Path) -> ControlPlaneConfig:
    cfg = load(ControlPlaneConfig, "")
    notify = NotifyConfig(
        receivers=[ReceiverConfig(name="nobody")],
        escalation_policies=[
            EscalationPolicyConfig(
                name="default", levels=[EscalationLevelConfig(receivers=["nobody"], wait_s=600)]
            )
        ],
    )
    return cfg.model_copy(
        update={
            "postgres": cfg.postgres.model_copy(update={"dsn": SecretStr(db_dsn)}),
            "auth": cfg.auth.model_copy(update={"bootstrap_token_file": tmp_path / "admin.token"}),
            "alerting": cfg.alerting.model_copy(
                update={"rules_dir": None, "warmup_s": 0.0, "notify": notify}
            ),
        }
    )


async def _seed_incident(db_dsn: str, started: float) -> int:
    """An incident as the pipeline leaves it: three alerts of one agent, their context."""
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.set_type_codec(
            "jsonb", encoder=_json, decoder=lambda s: s, schema="pg_catalog", format="text"
        )
        async with conn.transaction():
            iid = await open_incident(
                conn,
                ALERTS[0][1],
                "default",
                started,
                receiver="nobody",
                correlation=["agent=local-demo"],
            )
            assert iid is not None
            for i, (name, summary, value, _) in enumerate(ALERTS):
                labels = {"alertname": name, "agent": "local-demo", "severity": "warning"}
                annotations = {
                    "summary": summary,
                    "runbook_url": f"https://runbooks.example.org/{name}",
                }
                await conn.execute(
                    """INSERT INTO incident_alerts (incident_id, fingerprint, group_key, labels,
                           annotations, state, value, starts_at, joined_at)
                       VALUES ($1, $2, 'g', $3, $4, 'firing', $5, $6, $6)""",
                    iid,
                    f"fp-{name}",
                    labels,
                    annotations,
                    value,
                    dt.datetime.fromtimestamp(started + 5 * i, dt.UTC),
                )
                await record(
                    conn, iid, "alert_firing", "alerting", started + 5 * i,
                    {"alertname": name, "summary": summary},
                )  # fmt: skip
            # A histogram bucket's counter: ~20 requests/s under 2.5 s, fewer once degraded.
            points, count = [], 0.0
            for k in range(72):
                count += (198 if k < 60 else 120) + (k % 5) * 3
                points.append([started - 600 + 10 * k, count])
            context = {
                "recent_series": [
                    {
                        "name": "demo_http_request_duration_seconds_bucket",
                        "agent": "local-demo",
                        "labels": {"le": "2.5", "path": "/"},
                        "points": points,
                    }
                ],
                "rule_expressions": {name: expr for name, _, _, expr in ALERTS if expr},
            }
            await conn.execute(
                "UPDATE incidents SET context = $2 WHERE incident_id = $1", iid, context
            )
        return iid
    finally:
        await conn.close()


# The elements reaching past the viewport, to say what broke the layout.
_WIDEST = """Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)"""


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    _keep(path)


def _keep(path: Path) -> None:
    keep = os.environ.get("HAETAE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium (Debian package) missing")
async def test_incident_page_on_a_phone(
    db_dsn: str,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    tmp_path: Path,
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    client = await aiohttp_client(create_app(_config(db_dsn, tmp_path)))
    token = (tmp_path / "admin.token").read_text().strip()
    iid = await _seed_incident(db_dsn, time.time() - 180)
    resp = await client.get(f"/admin/incidents/{iid}", headers={"Authorization": f"Bearer {token}"})
    parts = urlsplit((await resp.json())["page_url"])
    url = str(client.make_url(parts.path)) + "?" + parts.query
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = await browser.new_context(
                viewport=PHONE, timezone_id="Asia/Seoul", locale="en-US", device_scale_factor=2
            )
            page = await context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await page.goto(url)
            assert await page.text_content("#status") == "triggered"
            opened = await page.text_content("dd time")
            # The viewer's zone and a relative time, not the UTC fallback.
            assert opened is not None and "UTC" not in opened and "ago" in opened, opened
            assert await page.locator("svg.graph").count() == 1
            assert await page.locator('a[href^="https://runbooks.example.org/"]').count() == 3
            assert await page.locator("code.expr").count() == 2
            await _shot(page, tmp_path, "incident-phone")
            width = await page.evaluate("document.documentElement.scrollWidth")
            wide = await page.evaluate(_WIDEST)
            assert width <= PHONE["width"], (width, wide)  # nothing wider than the phone
            assert errors == []  # the CSP let the inline script run, nothing else failed

            await page.fill("#actor", "Alice Kim")
            await page.click("#ack")
            await page.wait_for_selector("#status.acknowledged", timeout=10_000)
            assert "Alice Kim" in (await page.text_content("#timeline") or "")
            await page.click("#resolve")
            await page.wait_for_selector("#confirm-resolve", timeout=10_000)
            await _shot(page, tmp_path, "incident-phone-confirm")
            await page.click("#confirm-resolve")
            await page.wait_for_selector("#status.resolved", timeout=10_000)
            await _shot(page, tmp_path, "incident-phone-resolved")
        finally:
            await browser.close()
