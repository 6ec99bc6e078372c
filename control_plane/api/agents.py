"""The agent API (docs/wire-format.md): enrolment and report ingest."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from control_plane.appkeys import CONFIG, INGESTOR, METRICS, POOL
from control_plane.auth import TokenKind
from control_plane.auth.middleware import TOKEN_STORE, forbidden, require_principal
from control_plane.ingest.decode import (
    Report,
    check_agent_id,
    decode_report,
    parse_idempotency_key,
)
from control_plane.ingest.writer import IngestUnavailable
from control_plane.query.matchers import LABEL_NAME
from haetae.web.bodies import json_response, read_body, read_json
from haetae.web.problem import ProblemError, invalid

_ENROL_FIELDS = {"agent_id", "hostname", "labels"}
_MAX_HOSTNAME = 255
_MAX_ENROL_BODY = 64 * 1024
_UPSERT_AGENT = """
INSERT INTO agents (agent_id, hostname, labels) VALUES ($1, $2, $3)
ON CONFLICT (agent_id) DO UPDATE SET hostname = EXCLUDED.hostname, labels = EXCLUDED.labels
"""


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/agents/enroll", enroll)
    app.router.add_post("/api/v1/agents/{agent_id}/reports", post_report)


async def enroll(request: web.Request) -> web.Response:
    """Enrolment token in, agent token out; earlier tokens of that agent are revoked."""
    require_principal(request, TokenKind.ENROLMENT)
    agent_id, hostname, labels = _parse_enrolment(
        await read_json(request, max_bytes=_MAX_ENROL_BODY)
    )
    store = request.app[TOKEN_STORE]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute(_UPSERT_AGENT, agent_id, hostname, labels)
        await store.revoke_agent_tokens(agent_id, conn)
        token, _ = await store.create(
            TokenKind.AGENT, f"agent {agent_id}", agent_id=agent_id, conn=conn
        )
    return json_response({"agent_id": agent_id, "token": token}, status=201)


async def post_report(request: web.Request) -> web.Response:
    agent_id = request.match_info["agent_id"]
    principal = require_principal(request, TokenKind.AGENT)
    if principal.agent_id != agent_id:
        raise forbidden("an agent token may only write its own agent's reports")
    app = request.app
    metrics = app[METRICS]
    try:
        report = await _read_report(request, agent_id)
    except ProblemError:
        # Stored/duplicate/failed are counted by the ingestor; refusals only the route sees.
        metrics.ingest_reports.labels("rejected").inc()
        raise
    try:
        accepted, duplicate = await app[INGESTOR].submit(report)
    except IngestUnavailable as exc:
        raise ProblemError(
            503,
            "Service Unavailable",
            detail=f"the report was not stored ({exc.reason}); send it again later",
            type_="ingest-unavailable",
            headers={"Retry-After": str(max(1, round(exc.retry_after_s)))},
        ) from exc
    return json_response({"accepted": accepted, "duplicate": duplicate})


async def _read_report(request: web.Request, agent_id: str) -> Report:
    # Content-Type is not policed: the body must parse as a report whatever it claims to be.
    http = request.app[CONFIG].http
    body = await read_body(
        request, max_bytes=http.max_body_bytes, max_decompressed=http.max_decompressed_bytes
    )
    report = decode_report(body, agent_id, now=time.time(), cfg=request.app[CONFIG].ingest)
    key = request.headers.get("Idempotency-Key")
    if key is not None and parse_idempotency_key(key) != report.report_id:
        raise invalid("header.Idempotency-Key", "must equal the report's report_id")
    return report


def _parse_enrolment(body: Any) -> tuple[str, str, dict[str, str]]:
    if not isinstance(body, dict):
        raise invalid("body", "expected a JSON object")
    unknown = sorted(set(body) - _ENROL_FIELDS)
    if unknown:
        raise invalid(
            unknown[0], "unknown field", hint=f"known: {', '.join(sorted(_ENROL_FIELDS))}"
        )
    agent_id = check_agent_id(body.get("agent_id"), "agent_id")
    hostname = body.get("hostname", "")
    if not isinstance(hostname, str) or len(hostname) > _MAX_HOSTNAME:
        raise invalid("hostname", f"a string of at most {_MAX_HOSTNAME} characters")
    labels = body.get("labels", {})
    if not isinstance(labels, dict):
        raise invalid("labels", "an object of string values")
    for key, value in labels.items():
        if LABEL_NAME.fullmatch(key) is None:
            raise invalid("labels", f"{key[:128]!r} is not a label name")
        if not isinstance(value, str):
            raise invalid(f"labels.{key}", "label values must be strings")
    return agent_id, hostname, labels
