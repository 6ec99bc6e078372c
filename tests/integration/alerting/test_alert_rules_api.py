from __future__ import annotations

from pathlib import Path

from alerting_support import Plane, eventually
from tests_support import assert_problem

RULE = {
    "name": "HighValue",
    "expr": 'demo_value{kind="x"} > 5',
    "for": "30s",
    "severity": "critical",
    "labels": {"team": "web"},
    "annotations": {"summary": "value {{ $value }} on {{ $labels.agent }}"},
}


async def test_create_update_get_list_delete(plane: Plane) -> None:
    c = plane.client
    resp = await c.post("/admin/alerts/rule", json=RULE, headers=plane.admin())
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["name"] == "HighValue" and body["for"] == "30s" and body["source"] == "api"
    resp = await c.post("/admin/alerts/rule", json={**RULE, "for": "1m"}, headers=plane.admin())
    assert resp.status == 200
    resp = await c.get("/admin/alerts/rules/HighValue", headers=plane.admin())
    assert (await resp.json())["for"] == "1m"
    resp = await c.get("/admin/alerts/rules", headers=plane.admin())
    listed = {r["name"]: r["source"] for r in (await resp.json())["rules"]}
    assert listed == {"FileRule": "file", "HighValue": "api"}
    resp = await c.delete("/admin/alerts/rules/HighValue", headers=plane.admin())
    assert resp.status == 204
    await assert_problem(await c.get("/admin/alerts/rules/HighValue", headers=plane.admin()), 404)
    await assert_problem(
        await c.delete("/admin/alerts/rules/HighValue", headers=plane.admin()), 404
    )


async def test_bad_expression_is_a_problem_with_the_position(plane: Plane) -> None:
    resp = await plane.client.post(
        "/admin/alerts/rule",
        json={**RULE, "expr": "rate(demo_value[5m) > 1"},
        headers=plane.admin(),
    )
    body = await assert_problem(resp, 400)
    assert body["field"] == "body.expr"
    assert body["position"] == 18
    assert "expected ']'" in body["detail"]
    resp = await plane.client.post(
        "/admin/alerts/rule", json={**RULE, "for": "soon"}, headers=plane.admin()
    )
    assert (await assert_problem(resp, 400))["field"] == "body.for"
    # Nothing was stored.
    resp = await plane.client.get("/admin/alerts/rules", headers=plane.admin())
    assert [r["name"] for r in (await resp.json())["rules"]] == ["FileRule"]


async def test_file_rules_are_read_only_through_the_api(plane: Plane) -> None:
    c = plane.client
    resp = await c.post(
        "/admin/alerts/rule", json={"name": "FileRule", "expr": "x > 1"}, headers=plane.admin()
    )
    assert (await assert_problem(resp, 409))["field"] == "body.name"
    await assert_problem(await c.delete("/admin/alerts/rules/FileRule", headers=plane.admin()), 409)
    resp = await c.get("/admin/alerts/rules/FileRule", headers=plane.admin())
    assert (await resp.json())["severity"] == "info"


async def test_rule_files_are_reloaded_without_restart(plane: Plane, rules_dir: Path) -> None:
    (rules_dir / "more.yaml").write_text(
        "groups:\n  - name: more\n    rules:\n      - alert: Added\n        expr: y > 1\n"
    )

    async def listed() -> bool:
        resp = await plane.client.get("/admin/alerts/rules/Added", headers=plane.admin())
        return resp.status == 200

    await eventually(listed)
    # A broken edit keeps the previous rules.
    (rules_dir / "more.yaml").write_text("groups: [{name: more, rules: [{alert: Added}]}]")
    resp = await plane.client.get("/admin/alerts/rules/FileRule", headers=plane.admin())
    assert resp.status == 200


async def test_threshold_form(plane: Plane) -> None:
    resp = await plane.client.post(
        "/admin/monitoring/threshold",
        json={
            "name": "QueueDeep",
            "metric": "demo_queue_depth",
            "matchers": ['queue="mail"'],
            "comparator": ">=",
            "value": 100,
            "for": "1m",
        },
        headers=plane.admin(),
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["expr"] == 'demo_queue_depth{queue="mail"} >= 100.0'
    resp = await plane.client.post(
        "/admin/monitoring/threshold",
        json={"metric": "q", "comparator": "~", "value": 1},
        headers=plane.admin(),
    )
    assert (await assert_problem(resp, 400))["field"] == "body.comparator"


async def test_routes_need_an_admin_token(plane: Plane) -> None:
    await assert_problem(await plane.client.post("/admin/alerts/rule", json=RULE), 401)
    await assert_problem(await plane.client.get("/admin/alerts/history"), 401)
    await assert_problem(await plane.client.get("/admin/monitoring/alerts"), 401)
