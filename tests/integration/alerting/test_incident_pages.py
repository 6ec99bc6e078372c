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


async def _problem(resp: Any, status: int, field: str) -> None:
    body = await assert_problem(resp, status)
    assert body.get("field") == field, body


async def test_page_acknowledge_and_note_over_http(opened: tuple[Plane, str]) -> None:
    plane, link = opened
    c = plane.client
    resp = await c.get(link)
    assert resp.status == 200 and resp.content_type == "text/html"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    html = await resp.text()
    assert "Checkout &lt;b&gt;slow&lt;/b&gt;" in html  # escaped
    assert "id=ack" in html and "viewport" in html
    assert "<time datetime=" in html  # UTC without scripts, the viewer's zone with them
    query = dict(part.split("=") for part in link.split("?")[1].split("&"))
    action = link.split("?")[0] + "/action"
    resp = await c.post(action, data={**query, "action": "ack"}, allow_redirects=False)
    await _problem(resp, 400, "body.actor")  # who acts is asked, never guessed
    resp = await c.post(
        action, data={**query, "action": "ack", "actor": "Alice Kim"}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == link
    assert "haetae_name" in resp.cookies  # the page remembers the name for the next action
    resp = await c.post(
        action, data={**query, "action": "note", "text": "rolling back", "actor": "Alice Kim"}
    )
    html = await resp.text()
    assert "acknowledged" in html and "rolling back" in html and "id=ack" not in html
    assert "by Alice Kim" in html and "incident page" not in html
    assert 'value="Alice Kim"' in html
    assert "['" not in html and "{'" not in html  # no Python reprs
    # Resolve asks first (a page of its own, so it works without scripts).
    resp = await c.post(action, data={**query, "action": "resolve", "actor": "Alice Kim"})
    html = await resp.text()
    assert resp.status == 200 and "id=confirm-resolve" in html
    assert "id=status>acknowledged" in await (await c.get(link)).text()
    resp = await c.post(
        action, data={**query, "action": "resolve", "actor": "Alice Kim", "confirm": "yes"}
    )
    assert "id=status>resolved" in await resp.text()


async def test_bad_or_expired_links_are_refused(opened: tuple[Plane, str]) -> None:
    plane, link = opened
    path, query = link.split("?")
    await _problem(await plane.client.get(path), 400, "query.exp")
    await assert_problem(await plane.client.get(link.replace("sig=", "sig=0")), 400)
    await assert_problem(await plane.client.get(link.replace("sig=", "sig=f")[:-1]), 403)
    tampered = query.replace("exp=", "exp=1")
    await assert_problem(await plane.client.get(f"{path}?{tampered}"), 403)
    other = path.rsplit("/", 1)[0] + "/999999"
    await assert_problem(await plane.client.get(f"{other}?{query}"), 403)
    resp = await plane.client.post(path + "/action", data={"action": "ack", "actor": "x"})
    await _problem(resp, 400, "body.exp")


async def test_page_inputs_are_validated(opened: tuple[Plane, str]) -> None:
    plane, link = opened
    c = plane.client
    path, query = link.split("?")
    fields = dict(part.split("=") for part in query.split("&"))
    sig = fields["sig"]
    for exp in ("%C2%B2", "9" * 5000, "-1", "1e9"):
        resp = await c.get(f"{path}?exp={exp}&sig={sig}")
        await _problem(resp, 400, "query.exp")
    await _problem(await c.get(f"/incidents/%C2%B2?{query}"), 400, "path.id")
    await assert_problem(await c.get(f"/incidents/1%00?{query}"), 400)
    action = path + "/action"
    resp = await c.post(action, data={**fields, "action": "note", "text": "a\x00b", "actor": "x"})
    await _problem(resp, 400, "body.text")
    resp = await c.post(action, data={**fields, "action": "burn", "actor": "x"})
    await _problem(resp, 400, "body.action")
    resp = await c.post(
        action,
        data=b"--nope\r\nContent-Disposition: form-data; name=action\r\n\r\nack",
        headers={"Content-Type": "multipart/form-data; boundary=other"},
    )
    await assert_problem(resp, 400)
    resp = await c.post(
        action,
        data=b"garbage",
        headers={"Content-Type": "multipart/form-data"},  # no boundary at all
    )
    await assert_problem(resp, 400)


async def test_an_admin_reaches_the_list_by_signing_in(opened: tuple[Plane, str]) -> None:
    plane, _ = opened
    c = plane.client
    resp = await c.get("/incidents")
    html = await resp.text()
    assert resp.status == 200 and "id=token" in html  # the banner's link: a sign-in form
    assert resp.headers["Cache-Control"] == "no-store"
    resp = await c.post("/incidents/login", data={"token": "hta_wrong_token"})
    html = await resp.text()
    assert "not a valid admin token" in html and "Checkout" not in html
    resp = await c.post("/incidents/login", data={"token": plane.admin_token})
    html = await resp.text()
    assert resp.status == 200 and "Checkout &lt;b&gt;slow&lt;/b&gt;" in html
    assert plane.admin_token not in str(c.session.cookie_jar.filter_cookies(c.make_url("/")))
    first = html.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert (await c.get(first)).status == 200  # the list links each incident, signed


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
            await page.fill("#actor", "Alice Kim")
            await page.click("#ack")
            await page.wait_for_selector("#status.acknowledged", timeout=10_000)
            timeline = await page.text_content("#timeline")
            assert timeline is not None and "acknowledged" in timeline
            # The name given for the acknowledgement is remembered for the note.
            assert await page.input_value("#actor") == "Alice Kim"
            await page.fill("textarea[name=text]", "looking into it")
            await page.click("#note")
            await page.wait_for_selector("#timeline >> text=looking into it", timeout=10_000)
        finally:
            await browser.close()
