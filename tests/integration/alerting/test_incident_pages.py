"""Incident pages through signed, expiring links: over HTTP, and in headless Chromium (Debian
``chromium`` driven by Playwright) to acknowledge from the page and see the timeline change."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient
from alerting_support import Plane, alerting_config
from tests_support import assert_problem

from control_plane.app import create_app
from control_plane.config import (
    EscalationLevelConfig,
    EscalationPolicyConfig,
    NotifyConfig,
    ReceiverConfig,
)

CHROMIUM = shutil.which("chromium")

NOTIFY = NotifyConfig(
    receivers=[ReceiverConfig(name="nobody")],
    escalation_policies=[
        EscalationPolicyConfig(
            name="default", levels=[EscalationLevelConfig(receivers=["nobody"], wait_s=600)]
        )
    ],
)


@pytest.fixture
async def opened(
    db_dsn: str,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    tmp_path: Path,
) -> tuple[Plane, str]:
    client = await aiohttp_client(
        create_app(alerting_config(db_dsn, tmp_path, None, notify=NOTIFY))
    )
    plane = Plane(client, (tmp_path / "admin.token").read_text().strip())
    resp = await client.post(
        "/admin/incidents/create",
        json={"title": "Checkout <b>slow</b>", "policy": "default"},
        headers=plane.admin(),
    )
    assert resp.status == 201
    resp = await client.get(f"/admin/incidents/{(await resp.json())['id']}", headers=plane.admin())
    page_url = (await resp.json())["page_url"]
    parts = urlsplit(page_url)
    return plane, f"{parts.path}?{parts.query}"


async def test_page_acknowledge_and_note_over_http(opened: tuple[Plane, str]) -> None:
    plane, link = opened
    c = plane.client
    resp = await c.get(link)
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert "Checkout &lt;b&gt;slow&lt;/b&gt;" in html  # escaped
    assert "id=ack" in html and "viewport" in html
    query = dict(part.split("=") for part in link.split("?")[1].split("&"))
    resp = await c.post(
        link.split("?")[0] + "/action", data={**query, "action": "ack"}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == link
    resp = await c.post(
        link.split("?")[0] + "/action", data={**query, "action": "note", "text": "rolling back"}
    )
    html = await resp.text()
    assert "acknowledged" in html and "rolling back" in html and "id=ack" not in html


async def test_bad_or_expired_links_are_refused(opened: tuple[Plane, str]) -> None:
    plane, link = opened
    path, query = link.split("?")
    await assert_problem(await plane.client.get(path), 403)
    await assert_problem(await plane.client.get(link.replace("sig=", "sig=0")), 403)
    tampered = query.replace("exp=", "exp=1")
    await assert_problem(await plane.client.get(f"{path}?{tampered}"), 403)
    other = path.rsplit("/", 1)[0] + "/999999"
    await assert_problem(await plane.client.get(f"{other}?{query}"), 403)
    resp = await plane.client.post(path + "/action", data={"action": "ack"})
    await assert_problem(resp, 403)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium (Debian package) missing")
async def test_acknowledge_in_headless_chromium(opened: tuple[Plane, str]) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    plane, link = opened
    url = str(plane.client.make_url(link.split("?")[0])) + "?" + link.split("?")[1]
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            await page.goto(url)
            assert await page.text_content("#status") == "triggered"
            await page.click("#ack")
            await page.wait_for_selector("#status.acknowledged", timeout=10_000)
            timeline = await page.text_content("#timeline")
            assert timeline is not None and "acknowledged" in timeline
            await page.fill("textarea[name=text]", "looking into it")
            await page.click("#note")
            await page.wait_for_selector("#timeline >> text=looking into it", timeout=10_000)
        finally:
            await browser.close()
