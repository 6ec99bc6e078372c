"""The circuit breaker: failure-rate and slow-call windows, half-open probes, timeouts."""

from __future__ import annotations

import asyncio

import pytest

from haetae.resilience import BreakerConfig, BreakerState, CircuitBreaker, CircuitOpenError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(**kw: float) -> tuple[CircuitBreaker, FakeClock, list[tuple[str, str]]]:
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    cfg = BreakerConfig(
        **{"window_size": 10, "minimum_calls": 4, "wait_in_open_s": 5.0, "half_open_calls": 2, **kw}
    )
    b = CircuitBreaker(
        "t", cfg, clock=clock, on_state_change=lambda a, z: changes.append((a.value, z.value))
    )
    return b, clock, changes


def test_opens_on_failure_rate_then_half_opens_and_closes() -> None:
    b, clock, changes = make()
    for _ in range(3):
        b.record(False, 0.001)
    assert b.state is BreakerState.CLOSED  # below minimum_calls
    b.record(False, 0.001)
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    clock.now += 5
    assert b.allow() and b.allow()
    assert not b.allow()  # only two probes
    assert b.state is BreakerState.HALF_OPEN
    b.record(True, 0.001)
    b.record(True, 0.001)
    assert b.state is BreakerState.CLOSED
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_probe_reopens() -> None:
    b, clock, _ = make()
    for _ in range(4):
        b.record(False, 0.0)
    clock.now += 5
    assert b.allow()
    b.record(False, 0.0)
    assert b.state is BreakerState.OPEN
    b.record(True, 0.0)  # ignored while open
    assert b.state is BreakerState.OPEN


def test_opens_on_slow_calls_and_window_slides() -> None:
    b, _, _ = make(slow_call_duration_s=0.01, slow_call_rate_threshold=0.5)
    for _ in range(10):
        b.record(True, 0.001)
    for _ in range(4):
        b.record(True, 0.02)
    assert b.state is BreakerState.CLOSED
    assert b.snapshot()["slow_call_rate"] == pytest.approx(0.4)
    b.record(True, 0.02)
    assert b.state is BreakerState.OPEN


async def test_call_times_out_and_raises_when_open() -> None:
    b = CircuitBreaker("t", BreakerConfig(timeout_s=0.01, minimum_calls=2, window_size=2))

    async def hang() -> None:
        await asyncio.sleep(10)

    for _ in range(2):
        with pytest.raises(TimeoutError):
            await b.call(hang)
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as err:
        await b.call(hang)
    assert err.value.name == "t"


async def test_call_passes_results_and_outside_cancellation_is_not_a_failure() -> None:
    b, clock, _ = make()

    async def ok() -> int:
        return 7

    assert await b.call(ok) == 7
    for _ in range(4):
        b.record(False, 0.0)
    clock.now += 5
    assert b.allow()  # take probe 1 of 2

    async def slow() -> None:
        await asyncio.sleep(10)

    task = asyncio.ensure_future(b.call(slow))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.allow()  # the cancelled probe gave its slot back
