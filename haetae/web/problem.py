"""RFC 9457 problem details: every error a Haetae service returns has this shape.

Handlers raise :class:`ProblemError`; the middleware turns it (and aiohttp's own HTTP errors, and
anything unexpected) into ``application/problem+json``. Exceptions of a dependency that is down
become a 503 with ``Retry-After`` (the table in :mod:`haetae.web.faults`); anything else
unexpected becomes a 500 with no internals leaked, logged with a bounded traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from haetae.web.errorlog import FaultLogThrottle, bounded_instance, log_fault, log_unhandled
from haetae.web.faults import Fault, FaultTable, fault_for

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://haetae.dev/problems/"
# A detail that quotes input (``unknown rule 'xxxx...'``) is cut: answers stay small.
MAX_DETAIL = 1024


class ProblemError(Exception):
    """An error answer. ``type_`` is a stable slug (``invalid-field``); ``field`` the JSON
    pointer-ish path of the input at fault (``samples[3].value``, ``query.step``)."""

    def __init__(
        self,
        status: int,
        title: str,
        *,
        detail: str | None = None,
        type_: str = "about:blank",
        field: str | None = None,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type_ = type_
        self.field = field
        self.hint = hint
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_ if self.type_ == "about:blank" else TYPE_BASE + self.type_,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = _cut(self.detail, MAX_DETAIL)
        if self.field:
            body["field"] = _cut(self.field, 128)
        if self.hint:
            body["hint"] = self.hint
        if instance:
            body["instance"] = bounded_instance(instance)
        body.update(self.extra)
        return body


def invalid(field: str, detail: str, *, hint: str | None = None) -> ProblemError:
    """The common 400: one input field is wrong."""
    return ProblemError(
        400, "Invalid request", detail=detail, type_="invalid-field", field=field, hint=hint
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def problem_response(problem: ProblemError, instance: str | None = None) -> web.Response:
    return web.Response(
        status=problem.status,
        body=orjson.dumps(problem.body(instance)),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


_HTTP_TYPES = {
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    return await _answer_problems(request, handler, None, None)


def problem_middleware_with(
    faults: FaultTable | None = None, *, throttle: FaultLogThrottle | None = None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The problem middleware with another fault table (a service with other dependencies) or
    its own throttle of fault log lines."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        return await _answer_problems(request, handler, faults, throttle)

    return middleware


async def _answer_problems(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    faults: FaultTable | None,
    throttle: FaultLogThrottle | None,
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProblemError as exc:
        return problem_response(exc, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        problem = ProblemError(
            exc.status,
            exc.reason,
            detail=exc.text if exc.text and not exc.text.startswith(str(exc.status)) else None,
            type_=_HTTP_TYPES.get(exc.status, "about:blank"),
            headers={k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")},
        )
        return problem_response(problem, request.path)
    except Exception as exc:
        fault = fault_for(exc, faults)
        if fault is None:
            log_unhandled(exc, request)
            problem = ProblemError(500, "Internal Server Error", type_="internal")
        else:
            log_fault(fault, exc, request, throttle)
            problem = fault_problem(fault)
        return problem_response(problem, request.path)


def fault_problem(fault: Fault) -> ProblemError:
    headers = {"Retry-After": str(fault.retry_after_s)} if fault.retry_after_s else None
    return ProblemError(
        fault.status, fault.title, detail=fault.detail, type_=fault.type_, headers=headers
    )
