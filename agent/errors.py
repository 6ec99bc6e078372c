"""The agent's exceptions, grouped by what the caller does next.

``RetryableError`` means "keep the data, try again later"; ``PermanentError`` means the input or
the configuration must change first. Third-party exceptions (aiohttp, OSError) are translated at
the seam where they occur, with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.collectors.base import Sample


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class RetryableError(AgentError):
    """A transient fault (network, a 5xx, a full disk): retry later, nothing is lost."""


class PermanentError(AgentError):
    """Retrying the same thing will not help until the input or the configuration changes."""


class CollectorError(AgentError):
    """A collector could not gather its data; ``samples`` still holds what it did observe.

    The app scrape, for instance, raises it with ``haetae_app_scrape_up 0`` so the failure is
    both a sample and a failed collector entry.
    """

    def __init__(self, message: str, *, samples: Sequence[Sample] = ()) -> None:
        super().__init__(message)
        self.samples = list(samples)


class ControlPlaneUnavailable(RetryableError):
    """The control plane did not answer usefully (connection error, timeout, 5xx, 408, 429)."""

    def __init__(self, message: str, *, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class EnrolmentError(PermanentError):
    """The agent has no token and cannot get one (no enrolment token, or it was refused)."""


class SpoolError(AgentError):
    """The on-disk spool could not be read or written."""


class RecordTooLarge(SpoolError, PermanentError):
    """One record is larger than the whole spool may hold."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"record of {size} bytes exceeds the spool limit of {limit} bytes")
        self.size = size
        self.limit = limit
