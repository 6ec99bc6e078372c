"""Dependency health, checked in the background so the endpoints answer from memory.

The JSON follows draft-inadarei-api-health-check (``application/health+json``): a top-level
``status`` of pass/warn/fail and ``checks`` keyed ``component:measurement``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from control_plane.config import HealthConfig
from control_plane.telemetry import ControlPlaneMetrics

log = logging.getLogger("haetae.health")

HEALTH_CONTENT_TYPE = "application/health+json"


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


_ORDER = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=_ORDER.__getitem__, default=Status.PASS)


@dataclass(frozen=True)
class CheckResult:
    component: str
    component_type: str
    status: Status
    latency_s: float | None
    checked_at: float  # unix seconds
    output: str | None = None

    def as_json(self, now: float, stale_after_s: float) -> dict[str, Any]:
        status = self.status
        output = self.output
        if now - self.checked_at > stale_after_s and status is Status.PASS:
            status, output = Status.WARN, f"last checked {now - self.checked_at:.0f}s ago"
        body: dict[str, Any] = {
            "componentId": self.component,
            "componentType": self.component_type,
            "status": status.value,
            "time": dt.datetime.fromtimestamp(self.checked_at, dt.UTC).isoformat(),
        }
        if self.latency_s is not None:
            body["observedValue"] = round(self.latency_s * 1000, 3)
            body["observedUnit"] = "ms"
        if output:
            body["output"] = output
        return body


Probe = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Dependency:
    name: str
    component_type: str
    probe: Probe
    # A non-critical dependency that fails degrades the service (warn) instead of failing it.
    critical: bool = True


class HealthMonitor:
    """Runs every dependency probe each ``check_interval_s`` and keeps the last result."""

    def __init__(self, cfg: HealthConfig, metrics: ControlPlaneMetrics):
        self._cfg = cfg
        self._metrics = metrics
        self._deps: list[Dependency] = []
        self._results: dict[str, CheckResult] = {}
        self._task: asyncio.Task[None] | None = None
        self.started_at = time.time()

    def add(self, name: str, component_type: str, probe: Probe, *, critical: bool = True) -> None:
        self._deps.append(Dependency(name, component_type, probe, critical))

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(d) for d in self._deps))

    async def _check(self, dep: Dependency) -> None:
        start = time.perf_counter()
        try:
            await asyncio.wait_for(dep.probe(), self._cfg.check_timeout_s)
            status, output = Status.PASS, None
        except TimeoutError:
            status, output = Status.FAIL, f"no answer within {self._cfg.check_timeout_s}s"
        except Exception as exc:  # any failure of a dependency is a "fail", never a crash
            status, output = Status.FAIL, f"{type(exc).__name__}: {exc}"[:300]
        latency = time.perf_counter() - start
        previous = self._results.get(dep.name)
        if previous is not None and previous.status != status:
            log.warning(
                "dependency %s is now %s",
                dep.name,
                status.value,
                extra={"haetae.dependency": dep.name, "error.message": output},
            )
        self._results[dep.name] = CheckResult(
            dep.name, dep.component_type, status, latency, time.time(), output
        )
        self._metrics.health_check_duration.labels(dep.name).set(latency)
        self._metrics.health_check_up.labels(dep.name).set(1 if status is Status.PASS else 0)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.check_interval_s)
            await self.check_all()

    async def start(self) -> None:
        await self.check_all()
        self._task = asyncio.create_task(self._loop(), name="health-checks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def dependencies(
        self, now: float | None = None
    ) -> tuple[Status, dict[str, list[dict[str, Any]]]]:
        now = time.time() if now is None else now
        checks: dict[str, list[dict[str, Any]]] = {}
        statuses: list[Status] = []
        for dep in self._deps:
            result = self._results.get(dep.name)
            if result is None:
                entry: dict[str, Any] = {
                    "componentId": dep.name,
                    "componentType": dep.component_type,
                    "status": Status.WARN.value,
                    "output": "not checked yet",
                }
            else:
                entry = result.as_json(now, self._cfg.stale_after_s)
            checks[f"{dep.name}:responseTime"] = [entry]
            status = Status(entry["status"])
            if status is Status.FAIL and not dep.critical:
                status = Status.WARN
            statuses.append(status)
        return worst(statuses), checks
