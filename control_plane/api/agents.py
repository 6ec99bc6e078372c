"""The agent API (docs/wire-format.md): enrolment, takeover approval and report ingest."""

from __future__ import annotations

import time
from typing import Annotated

from aiohttp import web

from control_plane.appkeys import CONFIG, INGESTOR, METRICS, POOL
from control_plane.auth import Principal, Scope, TokenKind, requires_scope
from control_plane.auth.enrolment import AgentIdTaken, Authority, approve_takeover, enrol_agent
from control_plane.auth.middleware import (
    TOKEN_STORE,
    current_principal,
    forbidden,
    require_principal,
    unauthorized,
)
from control_plane.ingest.decode import Report, decode_report, parse_idempotency_key
from control_plane.ingest.errors import IngestRejected, IngestUnavailable
from control_plane.ingest.limits import SeriesLimitExceeded
from haetae.web.bodies import json_response, read_body
from haetae.web.problem import ProblemError, invalid
from haetae.web.validation import FloatRange, Labels, Model, Text, path_text
from haetae.web.validation import body as read_model

_MAX_ENROL_BODY = 64 * 1024
AgentId = Annotated[str, Text(128, min_length=1, pattern=r"^[A-Za-z0-9._-]+$")]


class Enrolment(Model):
    agent_id: AgentId
    hostname: Annotated[str, Text(255)] = ""
    labels: Labels = {}


class TakeoverApproval(Model):
    # How long the approval waits for the new agent's enrolment.
    within_s: Annotated[float, FloatRange(1.0, 7 * 86400.0)] = 900.0


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/agents/enroll", enroll)
    app.router.add_post("/api/v1/agents/{agent_id}/reports", post_report)
    app.router.add_post("/admin/agents/{agent_id}/takeover", post_takeover)


async def enroll(request: web.Request) -> web.Response:
    """A token in, an agent token out. Which token may enrol an id that a running agent holds:
    see control_plane/auth/enrolment.py (the fleet token alone may not: 409)."""
    principal = current_principal(request)
    authority = _enrolment_authority(principal)
    form = await read_model(request, Enrolment, max_bytes=_MAX_ENROL_BODY)
    if authority is Authority.SELF and principal and principal.agent_id != form.agent_id:
        raise forbidden("an agent token may only renew its own agent's enrolment")
    async with request.app[POOL].acquire() as conn:
        try:
            token, replaced = await enrol_agent(
                conn,
                request.app[TOKEN_STORE],
                form.agent_id,
                hostname=form.hostname,
                labels=form.labels,
                authority=authority,
            )
        except AgentIdTaken as exc:
            raise ProblemError(
                409,
                "Agent id in use",
                detail=f"{exc}; enrolling it again would cut that agent off",
                type_="agent-id-taken",
                field="body.agent_id",
                hint=(
                    "if this host replaces that agent, an admin approves it with "
                    f"POST /admin/agents/{form.agent_id}/takeover and this agent enrols again "
                    "(it retries by itself); otherwise give this agent its own agent_id"
                ),
            ) from None
    return json_response(
        {"agent_id": form.agent_id, "token": token, "replaced": replaced}, status=201
    )


def _enrolment_authority(principal: Principal | None) -> Authority:
    if principal is None:
        raise unauthorized("a bearer token is required")
    if principal.kind is TokenKind.ENROLMENT:
        return Authority.FLEET
    if principal.kind is TokenKind.AGENT:
        return Authority.SELF
    if principal.has_scope(Scope.ADMIN):
        return Authority.ADMIN
    raise forbidden("enrolment needs an enrolment token, the agent's own token or an admin token")


@requires_scope(Scope.ADMIN)
async def post_takeover(request: web.Request) -> web.Response:
    """Approve that the next enrolment of this agent id (with the fleet token) replaces the
    agent enrolled under it now."""
    agent_id = path_text(request, "agent_id", 128)
    approval = (
        await read_model(request, TakeoverApproval) if request.can_read_body else TakeoverApproval()
    )
    async with request.app[POOL].acquire() as conn:
        until = await approve_takeover(conn, agent_id, approval.within_s)
    if until is None:
        raise ProblemError(
            404,
            "Not Found",
            detail=f"no agent {agent_id!r}",
            type_="not-found",
            field="path.agent_id",
        )
    return json_response({"agent_id": agent_id, "takeover_until": until.isoformat()})


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
    except IngestRejected as exc:
        raise _rejection(exc) from None
    except IngestUnavailable as exc:
        raise ProblemError(
            503,
            "Service Unavailable",
            detail=f"the report was not stored ({exc.reason}); send it again later",
            type_="ingest-unavailable",
            headers={"Retry-After": str(max(1, round(exc.retry_after_s)))},
        ) from exc
    return json_response({"accepted": accepted, "duplicate": duplicate})


def _rejection(exc: IngestRejected) -> ProblemError:
    """The report's own fault: 422 (the agent dead-letters it), or 429 for an hourly limit."""
    extra: dict[str, object] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, SeriesLimitExceeded):
        extra["limit"] = exc.limit.value
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return ProblemError(
        exc.status,
        exc.title,
        detail=exc.detail,
        type_=exc.type_,
        field="samples" if isinstance(exc, SeriesLimitExceeded) else "body",
        headers=headers,
        extra=extra,
    )


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
