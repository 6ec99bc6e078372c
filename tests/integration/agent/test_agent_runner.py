"""The runner contains failures: a raising, hanging or stuck collector never fails the cycle."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from prometheus_client import CollectorRegistry

from agent.collectors.base import BlockingCollector, Collector, Sample
from agent.errors import CollectorError
from agent.runner import Runner


class _Base(Collector):
    @classmethod
    def from_config(cls, config: Any, session: Any) -> Collector | None:
        return cls()


class Fine(_Base):
    name = "fine"

    async def collect(self) -> list[Sample]:
        return [Sample("fine_value", {"k": "v"}, 1.0)]


class Broken(_Base):
    name = "broken"

    async def collect(self) -> list[Sample]:
        raise RuntimeError("collector bug")


class Hanging(_Base):
    name = "hanging"
    timeout_s = 0.2

    async def collect(self) -> list[Sample]:
        await asyncio.sleep(30)
        return []


class Partial(_Base):
    name = "partial"

    async def collect(self) -> list[Sample]:
        raise CollectorError("target down", samples=[Sample("partial_up", {}, 0.0)])


class Stuck(BlockingCollector):
    """Blocks in its worker thread until released, like a statvfs on a dead mount."""

    name = "stuck"
    timeout_s = 0.2

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    @classmethod
    def from_config(cls, config: Any, session: Any) -> Collector | None:
        return cls()

    def collect_blocking(self) -> list[Sample]:
        self.release.wait(10)
        return [Sample("stuck_done", {}, 1.0)]


async def test_failures_are_contained_and_measured() -> None:
    registry = CollectorRegistry()
    runner = Runner([Fine(), Broken(), Hanging(), Partial()], registry)
    cycle = await asyncio.wait_for(runner.run_cycle(), 5)
    runs = {r.name: r for r in cycle.collectors}
    assert runs["fine"].ok and runs["fine"].samples == 1 and runs["fine"].error is None
    assert not runs["broken"].ok and runs["broken"].error == "RuntimeError: collector bug"
    assert not runs["hanging"].ok and runs["hanging"].error == "timed out after 0.2 s"
    assert 0.2 <= runs["hanging"].duration_s < 1.0
    assert not runs["partial"].ok and runs["partial"].samples == 1
    assert sorted(s.name for s in cycle.samples) == ["fine_value", "partial_up"]
    assert cycle.collected_at > 0

    def metric(name: str, collector: str) -> float | None:
        return registry.get_sample_value(name, {"collector": collector})

    assert metric("haetae_agent_collector_success", "fine") == 1
    for name in ("broken", "hanging", "partial"):
        assert metric("haetae_agent_collector_success", name) == 0
    assert metric("haetae_agent_collector_duration_seconds", "hanging") >= 0.2  # type: ignore[operator]


async def test_stuck_blocking_collector_fails_fast_until_released() -> None:
    stuck = Stuck()
    runner = Runner([stuck, Fine()], CollectorRegistry())
    first = await runner.run_cycle()
    assert first.collectors[0].error == "timed out after 0.2 s"
    assert first.collectors[1].ok
    second = await runner.run_cycle()  # the thread is still blocked: no second thread piles up
    assert second.collectors[0].error is not None
    assert "still running" in second.collectors[0].error
    assert second.collectors[0].duration_s < 0.2
    stuck.release.set()
    await asyncio.sleep(0.05)
    third = await runner.run_cycle()
    assert third.collectors[0].ok and third.samples[0].name == "stuck_done"


async def test_max_timeout_caps_collector_timeouts() -> None:
    class Slow(Hanging):
        name = "slow"
        timeout_s = 60

    runner = Runner([Slow()], CollectorRegistry(), max_timeout_s=0.1)
    cycle = await asyncio.wait_for(runner.run_cycle(), 5)
    assert cycle.collectors[0].error == "timed out after 0.1 s"
