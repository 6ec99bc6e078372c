"""Run every collector once per cycle, concurrently, containing and measuring each one's failure."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from agent.collectors.base import BlockingCollector, Collector, Sample
from agent.errors import CollectorError

_MAX_ERROR_LEN = 300


@dataclass(frozen=True, slots=True)
class CollectorRun:
    """How one collector fared in one cycle (a report's ``collectors`` entry)."""

    name: str
    ok: bool
    duration_s: float
    samples: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Cycle:
    collected_at: float  # unix seconds at the start of the cycle
    samples: list[Sample]
    collectors: list[CollectorRun]
    # Pushed samples sent at once (agent.push): the control plane commits it without batching.
    urgent: bool = False


class Runner:
    """Collects from ``collectors`` concurrently; a collector that raises or overruns its
    timeout yields a failed ``CollectorRun`` (plus whatever samples it salvaged), never a
    failed cycle."""

    def __init__(
        self,
        collectors: Sequence[Collector],
        registry: CollectorRegistry,
        *,
        max_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self._collectors = list(collectors)
        self._max_timeout = max_timeout_s
        self._clock = clock
        self._log = logger or logging.getLogger("haetae.agent.runner")
        self._failing: set[str] = set()
        self._duration = Gauge(
            "haetae_agent_collector_duration_seconds",
            "How long the collector took in the last cycle.",
            ["collector"],
            registry=registry,
        )
        self._success = Gauge(
            "haetae_agent_collector_success",
            "1 if the collector succeeded in the last cycle, else 0.",
            ["collector"],
            registry=registry,
        )
        self._gauges = {
            c.name: (self._duration.labels(c.name), self._success.labels(c.name))
            for c in self._collectors
        }
        # Network collectors start first: their requests are in flight while the psutil ones
        # read /proc, so the answers are usually waiting by the time the loop looks.
        self._start_order = sorted(
            range(len(self._collectors)),
            key=lambda i: isinstance(self._collectors[i], BlockingCollector),
        )

    @property
    def collectors(self) -> list[Collector]:
        return list(self._collectors)

    async def run_cycle(self) -> Cycle:
        collected_at = self._clock()
        started: dict[int, asyncio.Future[tuple[list[Sample], CollectorRun]]] = {}
        for i in self._start_order:
            started[i] = asyncio.ensure_future(self._run_one(self._collectors[i]))
        # In config order, whatever order they started in.
        results = await asyncio.gather(*(started[i] for i in range(len(self._collectors))))
        samples: list[Sample] = []
        for part, _ in results:
            samples.extend(part)
        return Cycle(collected_at, samples, [run for _, run in results])

    async def _run_one(self, collector: Collector) -> tuple[list[Sample], CollectorRun]:
        timeout = collector.timeout_s
        if self._max_timeout is not None:
            timeout = min(timeout, self._max_timeout)
        samples: list[Sample] = []
        error: str | None = None
        bug: Exception | None = None
        start = time.perf_counter()
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                samples = await collector.collect()
        except CollectorError as exc:
            samples, error = exc.samples, str(exc)
        except TimeoutError as exc:
            error = f"timed out after {timeout:g} s" if deadline.expired() else _describe(exc)
        except Exception as exc:  # containing any collector bug is the runner's job
            error, bug = _describe(exc), exc
        duration = time.perf_counter() - start
        duration_gauge, success_gauge = self._gauges[collector.name]
        duration_gauge.set(duration)
        success_gauge.set(0.0 if error else 1.0)
        self._note_state(collector.name, error, bug)
        return samples, CollectorRun(collector.name, error is None, duration, len(samples), error)

    def _note_state(self, name: str, error: str | None, bug: Exception | None) -> None:
        # Log transitions only: a collector failing every 10 s must not flood the log.
        if error is None:
            if name in self._failing:
                self._failing.discard(name)
                self._log.info("collector %s recovered", name)
        elif name not in self._failing:
            self._failing.add(name)
            # An unexpected exception is a bug in the collector: keep its traceback.
            self._log.warning("collector %s failed: %s", name, error, exc_info=bug)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:_MAX_ERROR_LEN]
