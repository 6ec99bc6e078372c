"""The HTTP status -> channel error mapping shared by the HTTP API channels; pure."""

from __future__ import annotations

from control_plane.alerting.channels.base import (
    PermanentSendError,
    RateLimited,
    RetryableSendError,
    SendError,
)
from control_plane.alerting.retry import parse_retry_after


def error_for_status(
    status: int, *, retry_after: str | None, now: float, detail: str = ""
) -> SendError | None:
    """None for a success; 429 waits ``Retry-After``; 408 and 5xx are retried; other 4xx are
    refusals of this message."""
    if status < 400:
        return None
    if status == 429:
        return RateLimited(parse_retry_after(retry_after, now))
    reason = f"HTTP {status}" + (f": {detail[:200]}" if detail else "")
    if status >= 500 or status == 408:
        return RetryableSendError(reason, status=status)
    return PermanentSendError(reason, status=status)
