"""Why a report was not stored, grouped by what the agent does next.

:class:`IngestUnavailable` is the control plane's trouble (database down, overloaded, stopping):
the same report succeeds later (503, retry). :class:`IngestRejected` is the report's own: it
will never be stored as it is (422: the agent dead-letters it and moves on), or not before a
rate limit has passed (429 with ``Retry-After``). One report's rejection never fails another's.
"""

from __future__ import annotations


class IngestUnavailable(Exception):
    """Retryable: the report was not stored (database failure, overload, shutting down)."""

    def __init__(self, reason: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class IngestRejected(Exception):
    """This report was refused for what it holds; nothing of it was written."""

    type_ = "report-rejected"
    title = "Report rejected"

    def __init__(self, detail: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return 422
