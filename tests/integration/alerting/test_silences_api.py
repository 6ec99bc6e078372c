from __future__ import annotations

from alerting_support import Plane
from tests_support import assert_problem


async def test_create_list_expire_silence(plane: Plane) -> None:
    c = plane.client
    resp = await c.post(
        "/admin/alerts/silences",
        json={"matchers": ['alertname="Noisy"'], "duration": "2h", "comment": "deploy"},
        headers=plane.admin(),
    )
    assert resp.status == 201, await resp.text()
    silence = await resp.json()
    assert silence["state"] == "active" and silence["matchers"] == ['alertname="Noisy"']
    resp = await c.get("/admin/alerts/silences", headers=plane.admin())
    assert [s["id"] for s in (await resp.json())["silences"]] == [silence["id"]]
    resp = await c.delete(f"/admin/alerts/silences/{silence['id']}", headers=plane.admin())
    assert resp.status == 204
    resp = await c.get("/admin/alerts/silences", headers=plane.admin())
    assert (await resp.json())["silences"] == []
    resp = await c.get("/admin/alerts/silences?expired=true", headers=plane.admin())
    assert [s["state"] for s in (await resp.json())["silences"]] == ["expired"]


async def test_bad_silences_are_refused(plane: Plane) -> None:
    c = plane.client
    for body, field in (
        ({"duration": "1h"}, "body.matchers"),
        ({"matchers": ["nope"], "duration": "1h"}, "body.matchers[0]"),
        ({"matchers": ['a="b"']}, "body.ends_at"),
        ({"matchers": ['a="b"'], "ends_at": 10}, "body.ends_at"),
        ({"matchers": ['a="b"'], "duration": "forever"}, "body.duration"),
        ({"matchers": ['a="b"'], "duration": "1h", "who": "me"}, "body.who"),
    ):
        resp = await c.post("/admin/alerts/silences", json=body, headers=plane.admin())
        assert (await assert_problem(resp, 400))["field"] == field, body
    await assert_problem(
        await c.delete("/admin/alerts/silences/not-a-uuid", headers=plane.admin()), 400
    )
    await assert_problem(
        await c.delete(
            "/admin/alerts/silences/00000000-0000-0000-0000-000000000000", headers=plane.admin()
        ),
        404,
    )
