"""A circuit breaker in the manner of resilience4j: count-based sliding window over the last
calls, opened by a failure rate or a slow-call rate, half-open probes after a wait.

The check on the hot path (:meth:`CircuitBreaker.allow`) is a couple of attribute reads, so a
caller that degrades while the breaker is open pays well under a microsecond for it.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """The call was not attempted: the breaker named ``name`` is open (retry later)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"circuit breaker {name!r} is open")
        self.name = name


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    # Outcomes of the last ``window_size`` calls decide; fewer than ``minimum_calls`` never open.
    window_size: int = 50
    minimum_calls: int = 10
    failure_rate_threshold: float = 0.5
    # A call slower than ``slow_call_duration_s`` counts as slow (even if it succeeded).
    slow_call_duration_s: float = 0.025
    slow_call_rate_threshold: float = 0.8
    # Each call is cut off after ``timeout_s`` (a hanging dependency costs at most this).
    timeout_s: float = 0.05
    wait_in_open_s: float = 1.0
    half_open_calls: int = 3


_OK, _FAILED, _SLOW, _SLOW_FAILED = 0, 1, 2, 3


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._on_change = on_state_change
        self.state = BreakerState.CLOSED
        self._window: deque[int] = deque(maxlen=self.config.window_size)
        self._failures = 0
        self._slow = 0
        self._opened_at = 0.0
        self._probes_started = 0
        self._probe_results: list[bool] = []

    # -- the hot-path check -------------------------------------------------------------------
    def allow(self) -> bool:
        """True when a call may go through now (a half-open probe slot is taken when granted)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.config.wait_in_open_s:
                return False
            self._transition(BreakerState.HALF_OPEN)
        if self._probes_started < self.config.half_open_calls:
            self._probes_started += 1
            return True
        return False

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` under the breaker and its timeout; :class:`CircuitOpenError` if open."""
        if not self.allow():
            raise CircuitOpenError(self.name)
        return await self.run_allowed(fn)

    async def run_allowed(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` after a successful :meth:`allow` (saves raising when open)."""
        start = self._clock()
        try:
            async with asyncio.timeout(self.config.timeout_s):
                result = await fn()
        except asyncio.CancelledError:
            # Our own timeout surfaces as TimeoutError; a cancellation from outside is not the
            # dependency's fault, so it does not count.
            self._release_probe()
            raise
        except Exception:
            self.record(False, self._clock() - start)
            raise
        self.record(True, self._clock() - start)
        return result

    def record(self, ok: bool, duration_s: float) -> None:
        """Record one call's outcome (for callers that run the call themselves after allow())."""
        slow = duration_s >= self.config.slow_call_duration_s
        if self.state is BreakerState.HALF_OPEN:
            self._probe_results.append(ok and not slow)
            if not ok or slow:
                self._open()
            elif len(self._probe_results) >= self.config.half_open_calls:
                self._close()
            return
        if self.state is BreakerState.OPEN:
            return
        outcome = (_FAILED if not ok else _OK) | (_SLOW if slow else _OK)
        window = self._window
        if len(window) == window.maxlen:
            old = window[0]
            self._failures -= old & 1
            self._slow -= (old >> 1) & 1
        window.append(outcome)
        self._failures += outcome & 1
        self._slow += (outcome >> 1) & 1
        n = len(window)
        if n < self.config.minimum_calls:
            return
        if (
            self._failures / n >= self.config.failure_rate_threshold
            or self._slow / n >= self.config.slow_call_rate_threshold
        ):
            self._open()

    def snapshot(self) -> dict[str, object]:
        n = len(self._window)
        return {
            "name": self.name,
            "state": self.state.value,
            "calls": n,
            "failure_rate": self._failures / n if n else 0.0,
            "slow_call_rate": self._slow / n if n else 0.0,
        }

    # -- transitions --------------------------------------------------------------------------
    def _release_probe(self) -> None:
        if self.state is BreakerState.HALF_OPEN and self._probes_started > 0:
            self._probes_started -= 1

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._transition(BreakerState.OPEN)

    def _close(self) -> None:
        self._transition(BreakerState.CLOSED)

    def _transition(self, to: BreakerState) -> None:
        before = self.state
        self.state = to
        self._window.clear()
        self._failures = self._slow = 0
        self._probes_started = 0
        self._probe_results = []
        if self._on_change is not None and before is not to:
            self._on_change(before, to)
