"""The HTTP status -> channel error mapping shared by the HTTP API channels, and the one POST
they all make through it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import aiohttp

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


async def post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    data: Any,
    headers: Mapping[str, str],
    max_body: int = 16384,
) -> tuple[int, bytes]:
    """POST and return (status, first ``max_body`` bytes of the body) for a success; raise the
    channel error for a failure status, and a retryable one for a network failure or timeout."""
    try:
        async with session.post(url, data=data, headers=dict(headers)) as resp:
            body = await resp.content.read(max_body)
            error = error_for_status(
                resp.status,
                retry_after=resp.headers.get("Retry-After"),
                now=time.time(),
                detail=body.decode("utf-8", "replace"),
            )
            if error is not None:
                raise error
            return resp.status, body
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RetryableSendError(f"{type(exc).__name__}: {exc}") from exc
