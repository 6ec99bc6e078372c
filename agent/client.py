"""The HTTP side of the control-plane link: enrolment, the agent token, posting a report.

It says what the control plane answered and translates transport failures into
``ControlPlaneUnavailable``; what an answer means for a spooled report is the reporter's call.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter

from agent.errors import ControlPlaneUnavailable, EnrolmentError
from agent.http.client import HttpClient, HttpError
from agent.state import TokenStore

if TYPE_CHECKING:
    from agent.settings import AgentSettings

_MAX_ANSWER = 256 * 1024  # answers are small JSON documents; never buffer a runaway body
_MAX_DETAIL = 300


class FailureReason(enum.StrEnum):
    """Why an attempt to deliver failed and will be retried (a metric label)."""

    CONNECTION = "connection_error"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    THROTTLED = "throttled"  # 408, 409, 425 or 429
    UNAUTHORIZED = "unauthorized"
    MISCONFIGURED = "misconfigured"  # 403, 404, 405: the agent's id or URL, not the report
    NOT_ENROLLED = "not_enrolled"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    retry_after_s: float | None

    def detail(self) -> str:
        """The problem+json title/detail of the answer, else its start, for a log line."""
        try:
            doc = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return self.body[:_MAX_DETAIL].decode("utf-8", "replace")
        if isinstance(doc, dict):
            parts = [str(doc[k]) for k in ("title", "field", "detail", "hint") if doc.get(k)]
            if parts:
                return ": ".join(parts)[:_MAX_DETAIL]
        return str(doc)[:_MAX_DETAIL]


class ControlPlaneClient:
    """Posts reports with the agent token, enrolling first when there is none, and enrolling
    again when the control plane no longer accepts it (if an enrolment token is configured)."""

    def __init__(
        self,
        config: AgentSettings,
        *,
        session: HttpClient,
        tokens: TokenStore,
        registry: CollectorRegistry,
        logger: logging.Logger | None = None,
    ) -> None:
        link = config.control_plane
        base = link.url.rstrip("/")
        self._reports_url = f"{base}/api/v1/agents/{config.agent_id}/reports"
        self._enrol_url = f"{base}/api/v1/agents/enroll"
        secret = link.enrolment_token
        self._enrolment_token = secret.get_secret_value() if secret is not None else None
        self._enrol_body = orjson.dumps(
            {"agent_id": config.agent_id, "hostname": socket.gethostname(), "labels": config.labels}
        )
        self._timeout_s = link.request_timeout_s
        self._session = session
        self._tokens = tokens
        self._token: str | None = None
        self._log = logger or logging.getLogger("haetae.agent.client")
        self._enrolments = Counter(
            "haetae_agent_enrolments", "Successful enrolments.", registry=registry
        )

    async def post_report(self, report_id: str, body: bytes) -> Answer:
        """POST one gzip report body; raises ``ControlPlaneUnavailable`` when there is no
        answer, ``EnrolmentError`` when there is no token and none can be had."""
        answer = await self._post_report(await self._ensure_token(), report_id, body)
        if answer.status == 401 and self._enrolment_token is not None:
            # Our token was revoked (or the control plane lost it): enrol again, retry once.
            self._log.warning("the control plane refused the agent token; enrolling again")
            self._token = None
            await asyncio.to_thread(self._tokens.clear)
            answer = await self._post_report(await self._ensure_token(), report_id, body)
        return answer

    async def _post_report(self, token: str, report_id: str, body: bytes) -> Answer:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Idempotency-Key": report_id,
        }
        return await self._post(self._reports_url, body, headers)

    async def _ensure_token(self) -> str:
        if self._token is None:
            self._token = await asyncio.to_thread(self._tokens.load)
        if self._token is None:
            self._token = await self._enrol()
        return self._token

    async def _enrol(self) -> str:
        if self._enrolment_token is None:
            raise EnrolmentError(
                f"no agent token for {self._tokens.agent_id!r} in {self._tokens.path} "
                "and no control_plane.enrolment_token to enrol with"
            )
        headers = {
            "Authorization": f"Bearer {self._enrolment_token}",
            "Content-Type": "application/json",
        }
        answer = await self._post(self._enrol_url, self._enrol_body, headers)
        status = answer.status
        if status in (200, 201):
            token = _token_from(answer.body)
            if token is None:
                raise ControlPlaneUnavailable(
                    "enrolment answer has no token", reason=FailureReason.SERVER_ERROR
                )
            await asyncio.to_thread(self._tokens.save, token)
            self._enrolments.inc()
            self._log.info("enrolled with the control plane")
            return token
        if status in (408, 429) or status >= 500:
            raise ControlPlaneUnavailable(
                f"enrolment answered HTTP {status}",
                reason=FailureReason.SERVER_ERROR if status >= 500 else FailureReason.THROTTLED,
                retry_after_s=answer.retry_after_s,
            )
        raise EnrolmentError(f"enrolment refused with HTTP {status}: {answer.detail()}")

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        try:
            resp = await self._session.request(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout_s=self._timeout_s,
                max_body=_MAX_ANSWER,  # only a prefix is needed to log what went wrong
                over="truncate",
            )
        except TimeoutError as exc:
            raise ControlPlaneUnavailable(
                f"no answer from {url} within {self._timeout_s:g} s",
                reason=FailureReason.TIMEOUT,
            ) from exc
        except (HttpError, OSError) as exc:
            raise ControlPlaneUnavailable(
                f"cannot reach {url}: {exc}", reason=FailureReason.CONNECTION
            ) from exc
        return Answer(resp.status, resp.body, _retry_after(resp.headers.get("retry-after")))


def _token_from(body: bytes) -> str | None:
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    token = doc.get("token") if isinstance(doc, dict) else None
    return token if isinstance(token, str) and token else None


def _retry_after(value: str | None) -> float | None:
    # Only the delay-seconds form; an HTTP-date falls back to our own backoff.
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())
