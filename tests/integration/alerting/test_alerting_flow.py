"""From an agent's report to an alert and back, through the real app: event-driven evaluation,
the active-alerts view and the history with keyset pagination."""

from __future__ import annotations

from typing import Any

from alerting_support import Plane, eventually
from tests_support import assert_problem


async def test_report_fires_and_resolves_an_alert(plane: Plane) -> None:
    resp = await plane.client.post(
        "/admin/alerts/rule",
        json={
            "name": "DemoHigh",
            "expr": "demo_value > 5",
            "annotations": {"summary": "{{ $labels.agent }} at {{ $value }}"},
        },
        headers=plane.admin(),
    )
    assert resp.status == 201
    token = await plane.enroll("web-1")
    await plane.report("web-1", token, [("demo_value", {"kind": "x"}, 9.0)])

    async def firing() -> list[dict[str, Any]]:
        return [a for a in await plane.active() if a["state"] == "firing"]

    (alert,) = await eventually(firing)
    assert alert["rule"] == "DemoHigh"
    assert alert["labels"] == {
        "agent": "web-1",
        "kind": "x",
        "alertname": "DemoHigh",
        "severity": "warning",
    }
    assert alert["annotations"] == {"summary": "web-1 at 9"}
    assert alert["value"] == 9.0

    await plane.report("web-1", token, [("demo_value", {"kind": "x"}, 1.0)])

    async def cleared() -> bool:
        return not await plane.active()

    await eventually(cleared)

    async def history(**params: str) -> dict[str, Any]:
        resp = await plane.client.get("/admin/alerts/history", params=params, headers=plane.admin())
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    page = await history(rule="DemoHigh", limit="1")
    assert [(e["previous"], e["state"]) for e in page["events"]] == [("firing", "resolved")]
    older = await history(rule="DemoHigh", limit="1", cursor=page["next_cursor"])
    assert [(e["previous"], e["state"]) for e in older["events"]] == [("inactive", "firing")]
    assert older["next_cursor"] is None
    assert (await history(state="resolved"))["events"][0]["fingerprint"] == alert["fingerprint"]
    assert (await history(rule="Other"))["events"] == []


async def test_history_and_alerts_refuse_bad_parameters(plane: Plane) -> None:
    c = plane.client
    for url, field in (
        ("/admin/alerts/history?state=sleepy", "query.state"),
        ("/admin/alerts/history?cursor=nope", "query.cursor"),
        ("/admin/alerts/history?since=tomorrow", "query.since"),
        ("/admin/alerts/history?since=20&until=10", "query.since"),
        ("/admin/alerts/history?colour=red", "query.colour"),
        ("/admin/monitoring/alerts?state=resolved", "query.state"),
    ):
        body = await assert_problem(await c.get(url, headers=plane.admin()), 400)
        assert body["field"] == field, url
