"""The people and schedules API (/admin/oncall/...) on a real control plane: CRUD with
problem+json naming the field at fault, overrides, who is on call at an instant, the rendered
shifts, and deletions refused while a schedule or an escalation policy names the target."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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
    WebhookChannelConfig,
)

MON = "2026-11-02T09:00:00Z"


@pytest.fixture
async def api(
    db_dsn: str,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    tmp_path: Path,
) -> tuple[TestClient[Any, Any], dict[str, str]]:
    notify = NotifyConfig(
        receivers=[ReceiverConfig(name="ops", webhook=[WebhookChannelConfig(url="http://x/")])],
        escalation_policies=[
            EscalationPolicyConfig(
                name="p",
                levels=[
                    EscalationLevelConfig(targets=["schedule:primary"]),
                    EscalationLevelConfig(targets=["user:carol", "receiver:ops"]),
                ],
            )
        ],
    )
    client = await aiohttp_client(
        create_app(alerting_config(db_dsn, tmp_path, None, notify=notify))
    )
    plane = Plane(client, (tmp_path / "admin.token").read_text().strip())
    return client, plane.admin()


async def test_people_and_schedules(
    api: tuple[TestClient[Any, Any], dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    client, h = api
    # The start named the policy targets that do not exist yet.
    records = caplog.get_records("setup")
    missing = [r.getMessage() for r in records if r.name == "control_plane.oncall"]
    assert any("targets schedule:primary, which does not exist" in m for m in missing), missing
    assert any("targets user:carol" in m for m in missing)
    for uid, slack in (("alice", "UALICE"), ("bob", "UBOB"), ("carol", "UCAROL")):
        resp = await client.post(
            "/admin/oncall/users",
            json={
                "id": uid,
                "name": uid.title(),
                "timezone": "Asia/Seoul",
                "contact_methods": [{"type": "slack", "address": slack}],
            },
            headers=h,
        )
        assert resp.status == 201, await resp.text()
    resp = await client.post("/admin/oncall/users", json={"id": "alice"}, headers=h)
    assert (await assert_problem(resp, 409))["field"] == "body.id"
    resp = await client.post(
        "/admin/oncall/users",
        json={"id": "dan", "contact_methods": [{"type": "sms", "address": "not a phone"}]},
        headers=h,
    )
    assert (await assert_problem(resp, 400))["field"] == "body.contact_methods[0].address"
    await assert_problem(
        await client.post(
            "/admin/oncall/users",
            data=b"[",
            headers={**h, "Content-Type": "application/json"},
        ),
        400,
    )
    resp = await client.put(
        "/admin/oncall/users/bob",
        json={
            "name": "Bob Lee",
            "contact_methods": [
                {"type": "slack", "address": "UBOB"},
                {"type": "alimtalk", "address": "01012345678"},
            ],
            "notification_rules": [{"contact": 0}, {"contact": 1, "delay_s": "5m"}],
        },
        headers=h,
    )
    assert resp.status == 200, await resp.text()
    bob = await (await client.get("/admin/oncall/users/bob", headers=h)).json()
    assert bob["name"] == "Bob Lee" and bob["notification_rules"][1] == {
        "contact": 1,
        "delay_s": 300.0,
    }
    users = (await (await client.get("/admin/oncall/users", headers=h)).json())["users"]
    assert [u["id"] for u in users] == ["alice", "bob", "carol"]
    await assert_problem(await client.get("/admin/oncall/users/nobody", headers=h), 404)
    await assert_problem(await client.get("/admin/oncall/users"), 401)

    layer = {"name": "weekly", "start": MON, "rotation": "weekly", "users": ["alice", "zed"]}
    resp = await client.post(
        "/admin/oncall/schedules", json={"id": "primary", "layers": [layer]}, headers=h
    )
    assert (await assert_problem(resp, 400))["field"] == "body.layers[0].users[1]"
    resp = await client.post(
        "/admin/oncall/schedules",
        json={"id": "primary", "layers": [{**layer, "rotation": "1m", "users": ["alice"]}]},
        headers=h,
    )
    assert (await assert_problem(resp, 400))["field"] == "body.layers[0].rotation_s"
    resp = await client.post(
        "/admin/oncall/schedules",
        json={"id": "primary", "name": "Primary", "layers": [{**layer, "users": ["alice", "bob"]}]},
        headers=h,
    )
    assert resp.status == 201, await resp.text()
    got = await (await client.get("/admin/oncall/schedules/primary", headers=h)).json()
    assert got["layers"][0]["rotation_s"] == 604800 and got["layers"][0]["start"] == MON

    async def oncall(at: str) -> Any:
        resp = await client.get(f"/admin/oncall/schedules/primary/oncall?at={at}", headers=h)
        assert resp.status == 200, await resp.text()
        return (await resp.json())["oncall"]

    assert await oncall("2026-11-01T00:00:00Z") is None  # before the first handoff
    assert (await oncall(MON))["user"] == "alice"
    first = await oncall("2026-11-09T08:59:59Z")
    assert first["user"] == "alice" and first["name"] == "Alice" and first["layer"] == "weekly"
    assert (await oncall("2026-11-09T09:00:00Z"))["user"] == "bob"

    resp = await client.post(
        "/admin/oncall/schedules/primary/overrides",
        json={"user": "carol", "start": "2026-11-03T00:00:00Z", "end": "2026-11-04T00:00:00Z"},
        headers=h,
    )
    assert resp.status == 201, await resp.text()
    override = await resp.json()
    resp = await client.post(
        "/admin/oncall/schedules/primary/overrides",
        json={"user": "ghost", "start": MON, "end": "2026-11-04T00:00:00Z"},
        headers=h,
    )
    assert (await assert_problem(resp, 400))["field"] == "body.user"
    covered = await oncall("2026-11-03T12:00:00Z")
    assert covered["user"] == "carol" and covered["source"] == "override"
    resp = await client.get(
        "/admin/oncall/schedules/primary/shifts?since=2026-11-02T00:00:00Z"
        "&until=2026-11-10T00:00:00Z",
        headers=h,
    )
    shifts = [(s["start"], s["end"], s["user"]) for s in (await resp.json())["shifts"]]
    assert shifts == [
        (MON, "2026-11-03T00:00:00Z", "alice"),
        ("2026-11-03T00:00:00Z", "2026-11-04T00:00:00Z", "carol"),
        ("2026-11-04T00:00:00Z", "2026-11-09T09:00:00Z", "alice"),
        ("2026-11-09T09:00:00Z", "2026-11-10T00:00:00Z", "bob"),
    ]
    listed = await (await client.get("/admin/oncall/schedules/primary/overrides", headers=h)).json()
    assert [o["user"] for o in listed["overrides"]] == ["carol"]
    resp = await client.get("/admin/oncall/schedules/primary/shifts?since=0&until=1e10", headers=h)
    assert (await assert_problem(resp, 400))["field"] == "query.until"
    resp = await client.get("/admin/oncall/schedules/primary/oncall?at=soon", headers=h)
    assert (await assert_problem(resp, 400))["field"] == "query.at"
    await assert_problem(await client.get("/admin/oncall/schedules/x/oncall", headers=h), 404)
    oid = override["id"]
    resp = await client.delete(f"/admin/oncall/schedules/primary/overrides/{oid}", headers=h)
    assert resp.status == 204
    resp = await client.delete(f"/admin/oncall/schedules/primary/overrides/{oid}", headers=h)
    await assert_problem(resp, 404)

    # Deletions that would leave a dangling reference are refused.
    resp = await client.delete("/admin/oncall/users/alice", headers=h)
    body = await assert_problem(resp, 409)
    assert body["field"] == "path.id" and "primary" in body["detail"]
    resp = await client.delete("/admin/oncall/users/carol", headers=h)
    assert "escalation policies p" in (await assert_problem(resp, 409))["detail"]
    resp = await client.delete("/admin/oncall/schedules/primary", headers=h)
    await assert_problem(resp, 409)
    resp = await client.post(
        "/admin/oncall/schedules",
        json={"id": "spare", "layers": [{**layer, "users": ["alice"]}]},
        headers=h,
    )
    assert resp.status == 201
    assert (await client.delete("/admin/oncall/schedules/spare", headers=h)).status == 204
    schedules = (await (await client.get("/admin/oncall/schedules", headers=h)).json())["schedules"]
    assert [s["id"] for s in schedules] == ["primary"]
