"""Enrolment and report ingest over HTTP: status codes, problem fields, exactly-once storage."""

from __future__ import annotations

import gzip
import time
import uuid
from typing import Any

import orjson
from api_agents_support import Api
from tests_support import assert_problem


def report_doc(n: int = 3, **overrides: Any) -> dict[str, Any]:
    now = time.time()
    doc: dict[str, Any] = {
        "report_id": str(uuid.uuid4()),
        "seq": 1,
        "collected_at": now,
        "samples": [
            {"name": "app_requests_total", "labels": {"path": f"/{i}"}, "value": i}
            for i in range(n)
        ],
        "collectors": [{"name": "app", "ok": True, "duration_s": 0.01, "samples": n}],
    }
    doc.update(overrides)
    return doc


async def post_report(
    api: Api,
    agent_id: str,
    token: str,
    doc: Any,
    *,
    key: str | None = "auto",
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Any:
    body = raw if raw is not None else gzip.compress(orjson.dumps(doc))
    h = {**api.bearer(token), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    if key == "auto":
        h["Idempotency-Key"] = doc["report_id"]
    elif key is not None:
        h["Idempotency-Key"] = key
    h.update(headers or {})
    return await api.client.post(f"/api/v1/agents/{agent_id}/reports", data=body, headers=h)


def rejected(api: Api) -> float:
    value = api.metrics.registry.get_sample_value(
        "haetae_ingest_reports_total", {"outcome": "rejected"}
    )
    return value or 0.0


async def test_enrol_then_report_exactly_once(api: Api) -> None:
    token = await api.enroll("web-1", hostname="web-1.example", labels={"env": "prod"})
    assert token.startswith("hta_")
    row = await api.pool.fetchrow("SELECT hostname, labels FROM agents WHERE agent_id = 'web-1'")
    assert (row["hostname"], row["labels"]) == ("web-1.example", {"env": "prod"})

    doc = report_doc(n=4)
    resp = await post_report(api, "web-1", token, doc)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"accepted": 4, "duplicate": False}
    resp = await post_report(api, "web-1", token, doc)  # the agent's retry
    assert await resp.json() == {"accepted": 0, "duplicate": True}
    assert await api.pool.fetchval("SELECT count(*) FROM samples") == 4
    # uncompressed bodies and a missing Idempotency-Key are fine too
    plain = report_doc(n=1)
    resp = await api.client.post(
        "/api/v1/agents/web-1/reports", data=orjson.dumps(plain), headers=api.bearer(token)
    )
    assert await resp.json() == {"accepted": 1, "duplicate": False}


async def test_an_agent_may_write_only_its_own_reports(api: Api) -> None:
    token_a = await api.enroll("agent-a")
    await api.enroll("agent-b")
    problem = await assert_problem(await post_report(api, "agent-b", token_a, report_doc()), 403)
    assert "own" in problem["detail"]
    admin = api.admin_token
    await assert_problem(await post_report(api, "agent-a", admin, report_doc()), 403)
    await assert_problem(
        await post_report(api, "agent-a", "", report_doc(), headers={"Authorization": ""}), 401
    )
    assert await api.pool.fetchval("SELECT count(*) FROM samples") == 0


async def test_bad_reports_are_4xx_problems_and_counted(api: Api) -> None:
    token = await api.enroll("web-1")
    doc = report_doc()
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"doc": report_doc(samples=[{"name": "x", "value": "1"}])}, 400, "samples[0].value"),
        ({"doc": doc, "key": str(uuid.uuid4())}, 400, "header.Idempotency-Key"),
        ({"doc": doc, "key": "not-a-uuid"}, 400, "header.Idempotency-Key"),
        ({"doc": doc, "raw": b"\x1f\x8b\x08garbage"}, 400, "body"),
        ({"doc": doc, "raw": gzip.compress(b"{not json")}, 400, "body"),
        ({"doc": report_doc(n=1001)}, 400, "samples"),
        ({"doc": doc, "raw": gzip.compress(b" " * 300_000)}, 413, "body"),
        ({"doc": doc, "raw": b"x" * 70_000}, 413, "body"),
        ({"doc": doc, "headers": {"Content-Encoding": "br"}}, 415, "header.Content-Encoding"),
    ]
    for i, (kw, status, field) in enumerate(cases):
        resp = await post_report(api, "web-1", token, **kw)
        problem = await assert_problem(resp, status)
        assert problem.get("field") == field, (i, problem)
    assert rejected(api) == len(cases)
    assert await api.pool.fetchval("SELECT count(*) FROM ingested_reports") == 0


async def test_a_database_failure_is_a_retryable_503(api: Api) -> None:
    token = await api.enroll("web-1")
    await api.pool.execute(
        """CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'disk full'; END $$;
           CREATE TRIGGER poison BEFORE INSERT ON samples FOR EACH ROW EXECUTE FUNCTION poison();"""
    )
    doc = report_doc()
    resp = await post_report(api, "web-1", token, doc)
    problem = await assert_problem(resp, 503)
    assert int(resp.headers["Retry-After"]) >= 1
    assert "disk full" not in str(problem)  # no internals leak
    await api.pool.execute("DROP TRIGGER poison ON samples")
    resp = await post_report(api, "web-1", token, doc)
    assert await resp.json() == {"accepted": 3, "duplicate": False}
