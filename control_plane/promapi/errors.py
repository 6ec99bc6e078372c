"""Prometheus's error envelope: clients (Grafana, promtool, KEDA) parse ``errorType`` and
``error``, so errors here never become problem+json.

Status codes as Prometheus's ``api/v1``: 400 ``bad_data`` (the request is wrong), 422
``execution`` (it is right but cannot be answered on this data: too many series or points, a
one-to-one match that meets duplicates), 503 ``timeout``/``unavailable``, 499 ``canceled``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from aiohttp import web

from haetae.web.bodies import json_response
from haetae.web.problem import ProblemError


class ErrorType(StrEnum):
    BAD_DATA = "bad_data"
    EXECUTION = "execution"
    TIMEOUT = "timeout"
    CANCELED = "canceled"
    UNAVAILABLE = "unavailable"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"


_STATUS = {
    ErrorType.BAD_DATA: 400,
    ErrorType.EXECUTION: 422,
    ErrorType.TIMEOUT: 503,
    ErrorType.CANCELED: 499,
    ErrorType.UNAVAILABLE: 503,
    ErrorType.UNAUTHORIZED: 401,
    ErrorType.FORBIDDEN: 403,
}
_BY_STATUS = {401: ErrorType.UNAUTHORIZED, 403: ErrorType.FORBIDDEN, 503: ErrorType.UNAVAILABLE}


class PromApiError(Exception):
    """An answer in Prometheus's error envelope; ``message`` is what the client shows."""

    def __init__(
        self, error_type: ErrorType, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message[:1024]
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return _STATUS[self.error_type]

    def response(self) -> web.Response:
        body = {"status": "error", "errorType": self.error_type.value, "error": self.message}
        return json_response(body, status=self.status, headers=self.headers)


def bad_data(message: str) -> PromApiError:
    return PromApiError(ErrorType.BAD_DATA, message)


def execution(message: str) -> PromApiError:
    return PromApiError(ErrorType.EXECUTION, message)


def from_problem(exc: ProblemError) -> PromApiError:
    """The validation seam's and auth's errors in this envelope: the field at fault first,
    as Prometheus words it (``invalid parameter "step": ...``)."""
    error_type = ErrorType.BAD_DATA if exc.status < 500 else ErrorType.UNAVAILABLE
    error_type = _BY_STATUS.get(exc.status, error_type)
    detail = exc.detail or exc.title
    if exc.field and exc.field.startswith("query."):
        detail = f'invalid parameter "{exc.field.removeprefix("query.")}": {detail}'
    return PromApiError(error_type, detail, headers=exc.headers)


def success(data: Any, *, warnings: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = warnings
    return json_response(body)
