"""What a send can end in, grouped by what the forwarder does next."""

from __future__ import annotations

from enum import StrEnum


class RetryReason(StrEnum):
    """Why a request is sent again (label of ``haetae_forward_retries_total``)."""

    CONNECTION = "connection"  # refused, reset, DNS, timeout
    THROTTLED = "throttled"  # 429
    SERVER = "server"  # 5xx


class ForwardError(Exception):
    """Base of the forwarder's send errors."""


class RetryableSendError(ForwardError):
    """The store did not take the batch but may later: send it again after a backoff."""

    def __init__(self, reason: RetryReason, detail: str, *, retry_after_s: float | None = None):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s


class RejectedSendError(ForwardError):
    """The store refused the batch for good (a 4xx other than 429): it is dropped, counted."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
