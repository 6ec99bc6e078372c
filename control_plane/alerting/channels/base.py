"""What every channel is: one ``send()`` of a :class:`Notification`, and errors grouped by what
the outbox does next (retry later, wait as told, or give up on this message)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from control_plane.alerting.payload import Notification


@dataclass(frozen=True)
class Delivery:
    """A delivery receipt: the remote status and what it handed back (ids, thread)."""

    status: int
    receipt: dict[str, Any] = field(default_factory=dict)


class SendError(Exception):
    """Base of the channel errors; ``status`` is the remote HTTP status when there was one."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class RetryableSendError(SendError):
    """Try again later (5xx, timeouts, connection errors): jittered backoff."""


class RateLimited(RetryableSendError):
    """429: wait ``retry_after_s`` before sending anything more to this destination."""

    def __init__(self, retry_after_s: float, *, status: int = 429) -> None:
        super().__init__(f"rate limited for {retry_after_s:g}s", status=status)
        self.retry_after_s = retry_after_s


class PermanentSendError(SendError):
    """The destination refuses this message (4xx): retrying the same message cannot help."""


class Channel(Protocol):
    kind: str
    # Minimum seconds between two messages to one destination of this kind (0 = none).
    min_interval_s: float

    async def send(
        self,
        notification: Notification,
        *,
        idempotency_key: str,
        previous: Mapping[str, Any] | None = None,
    ) -> Delivery:
        """Deliver one notification. ``previous`` is the receipt of the last message sent to
        this destination for the same group (a chat channel threads and updates with it)."""
        ...

    async def close(self) -> None: ...
