"""Every /admin route refuses a missing, wrong or under-scoped token; tokens are manageable."""

from __future__ import annotations

import os
import stat

import pytest
from tests_support import assert_problem


async def test_bootstrap_admin_token_file_is_private(control_plane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "admin.token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert control_plane.admin_token.startswith("hta_")


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Bearer hta_0123456789abcdef_nope"}, 401),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 401),
        ({"Authorization": "Bearer preshared-enrolment-secret"}, 403),
    ],
)
async def test_admin_routes_reject_bad_credentials(control_plane, headers, status) -> None:  # type: ignore[no-untyped-def]
    for method, path in [
        ("GET", "/admin/tokens"),
        ("POST", "/admin/tokens"),
        ("GET", "/admin/agents"),
        ("GET", "/admin/monitoring/metrics?name=x"),
    ]:
        resp = await control_plane.client.request(method, path, headers=headers)
        await assert_problem(resp, status)
        if status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_scopes_are_enforced(control_plane) -> None:  # type: ignore[no-untyped-def]
    client = control_plane.client
    resp = await client.post(
        "/admin/tokens",
        json={"kind": "admin", "name": "viewer", "scopes": ["read"]},
        headers=control_plane.admin(),
    )
    assert resp.status == 201
    reader = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    # read scope: may read monitoring data, may not manage tokens
    assert (await client.get("/admin/agents", headers=reader)).status == 200
    await assert_problem(await client.get("/admin/tokens", headers=reader), 403)
    await assert_problem(
        await client.post("/admin/tokens", json={"kind": "enrolment", "name": "x"}, headers=reader),
        403,
    )


async def test_token_create_validation_names_the_field(control_plane) -> None:  # type: ignore[no-untyped-def]
    cases = [
        ({"kind": "agent", "name": "x"}, "body.kind"),
        ({"kind": "admin", "name": ""}, "body.name"),
        ({"kind": "admin", "name": "x", "scopes": ["root"]}, "body.scopes[0]"),
        ({"kind": "admin", "name": "x"}, "body.scopes"),
        ({"kind": "enrolment", "name": "x", "expires_in_s": -1}, "body.expires_in_s"),
        ({"kind": "enrolment", "name": "x", "extra": 1}, "body.extra"),
    ]
    for body, field in cases:
        resp = await control_plane.client.post(
            "/admin/tokens", json=body, headers=control_plane.admin()
        )
        problem = await assert_problem(resp, 400)
        assert problem["field"] == field, body
    resp = await control_plane.client.post(
        "/admin/tokens",
        data=b"{not json",
        headers={**control_plane.admin(), "Content-Type": "application/json"},
    )
    assert (await assert_problem(resp, 400))["field"] == "body"


async def test_revoked_token_stops_working(control_plane) -> None:  # type: ignore[no-untyped-def]
    client = control_plane.client
    resp = await client.post(
        "/admin/tokens",
        json={"kind": "admin", "name": "temp", "scopes": ["write"]},
        headers=control_plane.admin(),
    )
    created = await resp.json()
    temp = {"Authorization": f"Bearer {created['token']}"}
    assert (await client.get("/admin/agents", headers=temp)).status == 200
    resp = await client.delete(
        f"/admin/tokens/{created['token_id']}", headers=control_plane.admin()
    )
    assert resp.status == 204
    await assert_problem(await client.get("/admin/agents", headers=temp), 401)
    await assert_problem(
        await client.delete(f"/admin/tokens/{created['token_id']}", headers=control_plane.admin()),
        404,
    )
    listing = await (await client.get("/admin/tokens", headers=control_plane.admin())).json()
    by_id = {t["token_id"]: t for t in listing["tokens"]}
    assert by_id[created["token_id"]]["revoked_at"] is not None
    assert all("secret" not in key for t in listing["tokens"] for key in t)


async def test_unknown_route_and_method_are_problem_json(control_plane) -> None:  # type: ignore[no-untyped-def]
    await assert_problem(await control_plane.client.get("/nope"), 404)
    await assert_problem(await control_plane.client.post("/health"), 405)
