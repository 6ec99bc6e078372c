"""Enrolment over HTTP: who may enrol an id, and that a running agent is never cut off silently
(issue 9: re-enrolling with the fleet token used to revoke the running agent's token)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from api_agents_support import Api
from tests_support import assert_problem

from control_plane.auth import Scope, TokenKind
from control_plane.auth.middleware import TOKEN_STORE

URL = "/api/v1/agents/enroll"


def doc() -> dict[str, Any]:
    return {
        "report_id": str(uuid.uuid4()),
        "collected_at": time.time(),
        "samples": [{"name": "up", "value": 1}],
    }


async def report_status(api: Api, agent_id: str, token: str) -> int:
    resp = await api.client.post(
        f"/api/v1/agents/{agent_id}/reports", json=doc(), headers=api.bearer(token)
    )
    return resp.status


async def enrol(api: Api, token: str, agent_id: str = "web-1", **extra: Any) -> Any:
    return await api.client.post(
        URL, json={"agent_id": agent_id, **extra}, headers=api.bearer(token)
    )


async def admin_token(api: Api, scope: Scope) -> str:
    token, _ = await api.app[TOKEN_STORE].create(TokenKind.ADMIN, f"test {scope}", scopes=[scope])
    return token


async def test_the_fleet_token_cannot_take_over_a_running_agent(api: Api) -> None:
    running = await api.enroll("web-1")
    problem = await assert_problem(await enrol(api, api.enrolment_token, hostname="x"), 409)
    assert problem["type"].endswith("/agent-id-taken")
    assert problem["field"] == "body.agent_id"
    assert "/admin/agents/web-1/takeover" in problem["hint"]
    # the running agent goes on, and nothing of the refused enrolment was kept
    assert await report_status(api, "web-1", running) == 200
    assert await api.pool.fetchval("SELECT hostname FROM agents") == ""


async def test_an_admin_approved_takeover_is_used_once(api: Api) -> None:
    old = await api.enroll("web-1")
    writer = await admin_token(api, Scope.WRITE)
    admin = await admin_token(api, Scope.ADMIN)
    takeover = "/admin/agents/web-1/takeover"
    # approving needs the admin scope, and an agent that exists
    await assert_problem(await api.client.post(takeover, headers=api.bearer(writer)), 403)
    missing = "/admin/agents/nobody/takeover"
    await assert_problem(await api.client.post(missing, headers=api.bearer(admin)), 404)
    bad = await api.client.post(takeover, json={"within_s": 1e12}, headers=api.bearer(admin))
    assert (await assert_problem(bad, 400))["field"] == "body.within_s"

    resp = await api.client.post(takeover, json={"within_s": 60}, headers=api.bearer(admin))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["agent_id"] == "web-1"
    resp = await enrol(api, api.enrolment_token, hostname="replacement")
    assert resp.status == 201, await resp.text()
    answer = await resp.json()
    assert answer["replaced"] is True
    assert await report_status(api, "web-1", old) == 401
    assert await report_status(api, "web-1", answer["token"]) == 200
    assert await api.pool.fetchval("SELECT hostname FROM agents") == "replacement"
    # the approval was consumed: the old agent enrolling again cannot take the id back
    await assert_problem(await enrol(api, api.enrolment_token), 409)


async def test_an_expired_approval_takes_over_nothing(api: Api) -> None:
    await api.enroll("web-1")
    await api.pool.execute("UPDATE agents SET takeover_until = now() - interval '1 second'")
    await assert_problem(await enrol(api, api.enrolment_token), 409)


async def test_the_agent_itself_or_an_admin_may_renew(api: Api) -> None:
    old = await api.enroll("web-1")
    other = await api.enroll("web-2")
    # another agent's token may not touch web-1
    await assert_problem(await enrol(api, other), 403)
    resp = await enrol(api, old)  # the running agent renews its own token
    assert resp.status == 201, await resp.text()
    renewed = (await resp.json())["token"]
    assert await report_status(api, "web-1", old) == 401
    assert await report_status(api, "web-1", renewed) == 200
    # an admin (admin scope) enrols by hand; a reader may not
    reader = await admin_token(api, Scope.READ)
    await assert_problem(await enrol(api, reader), 403)
    resp = await enrol(api, await admin_token(api, Scope.ADMIN))
    assert resp.status == 201 and (await resp.json())["replaced"] is True
    assert await report_status(api, "web-1", renewed) == 401


async def test_an_id_without_a_live_token_is_free_to_enrol(api: Api) -> None:
    """Tokens revoked (by an admin, or lost with the control plane's data): the fleet token
    enrols the id again, as nothing can be running with it."""
    await api.enroll("web-1")
    await api.pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE kind = 'agent'")
    resp = await enrol(api, api.enrolment_token)
    assert resp.status == 201 and (await resp.json())["replaced"] is False


async def test_concurrent_first_enrolments_give_the_id_to_one(api: Api) -> None:
    import asyncio

    answers = await asyncio.gather(*(enrol(api, api.enrolment_token) for _ in range(5)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [201, 409, 409, 409, 409]
    live = await api.pool.fetchval("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")
    assert live == 3  # the enrolment and admin tokens of the fixture, and one agent token


async def test_enrolment_needs_a_token(api: Api) -> None:
    await assert_problem(await api.client.post(URL, json={"agent_id": "x"}), 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.agent_id"),
        ({"agent_id": "has space"}, "body.agent_id"),
        ({"agent_id": "a/b"}, "body.agent_id"),
        ({"agent_id": "x" * 129}, "body.agent_id"),
        ({"agent_id": 5}, "body.agent_id"),
        ({"agent_id": "a", "hostname": 5}, "body.hostname"),
        ({"agent_id": "a", "hostname": "h\u0000"}, "body.hostname"),
        ({"agent_id": "a", "labels": ["x"]}, "body.labels"),
        ({"agent_id": "a", "labels": {"env": 1}}, "body.labels.env"),
        ({"agent_id": "a", "labels": {"env": "x\u0000y"}}, "body.labels.env"),
        ({"agent_id": "a", "labels": {"env": "x" * 1025}}, "body.labels.env"),
        ({"agent_id": "a", "labels": {"bad-name": "x"}}, "body.labels.bad-name.[key]"),
        ({"agent_id": "a", "extra": 1}, "body.extra"),
        ([], "body"),
    ],
)
async def test_enrolment_validation_names_the_field(api: Api, body: Any, field: str) -> None:
    resp = await api.client.post(URL, json=body, headers=api.bearer(api.enrolment_token))
    assert (await assert_problem(resp, 400))["field"] == field
    assert await api.pool.fetchval("SELECT count(*) FROM agents") == 0
