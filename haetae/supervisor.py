"""Supervision for ``haetae up``: every process it starts (embedded servers included) is watched,
reaped when it dies, restarted with backoff, and reported on the console."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

MAX_DELAY_S = 30.0
# A process that ran this long before dying had recovered: its next restart starts at 1 s again.
STABLE_AFTER_S = 60.0


class Supervised(Protocol):
    """A child process ``haetae up`` runs: ``start`` raises if it cannot start; ``poll`` reaps
    it and answers None while it runs, else its exit status (negative: the killing signal)."""

    name: str

    @property
    def log_path(self) -> Path | None: ...

    @property
    def pid(self) -> int | None: ...

    def start(self) -> object: ...

    def poll(self) -> int | None: ...

    def stop(self) -> None: ...


@dataclass
class _Watch:
    service: Supervised
    started_at: float
    restarts: int = 0
    restart_at: float | None = None  # set while the service waits for its restart


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def backoff_s(restarts: int) -> float:
    """1, 2, 4, 8, 16, then 30 s between successive restarts."""
    return min(MAX_DELAY_S, 2.0 ** min(restarts - 1, 5))


class Supervisor:
    """Watches services that are already running; ``check`` is one pass (tests call it)."""

    def __init__(
        self,
        services: list[Supervised],
        *,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._out = out
        self._watches = [_Watch(s, clock()) for s in services]

    def add(self, service: Supervised) -> None:
        self._watches.append(_Watch(service, self._clock()))

    def run(self, stop: threading.Event, interval_s: float = 0.5) -> None:
        while not stop.wait(interval_s):
            self.check()

    def check(self) -> None:
        for watch in self._watches:
            now = self._clock()
            if watch.restart_at is None:
                code = watch.service.poll()
                if code is not None:
                    self._schedule_restart(watch, code, now)
            if watch.restart_at is not None and now >= watch.restart_at:
                self._restart(watch)

    def stop_all(self) -> None:
        """Stop in reverse order of start: the embedded servers, started first, stop last."""
        for watch in reversed(self._watches):
            watch.service.stop()

    def _schedule_restart(self, watch: _Watch, code: int, now: float) -> None:
        if now - watch.started_at >= STABLE_AFTER_S:
            watch.restarts = 0
        watch.restarts += 1
        delay = backoff_s(watch.restarts)
        watch.restart_at = now + delay
        service = watch.service
        self._say(
            f"haetae: {service.name} (pid {service.pid}) {describe_exit(code)}; "
            f"restarting in {delay:g}s (log: {service.log_path})"
        )

    def _restart(self, watch: _Watch) -> None:
        service = watch.service
        try:
            service.start()
        except Exception as exc:  # any failure to start is retried, never fatal to the rest
            watch.restarts += 1
            delay = backoff_s(watch.restarts)
            watch.restart_at = self._clock() + delay
            self._say(f"haetae: {service.name} did not restart ({exc}); retrying in {delay:g}s")
            return
        watch.restart_at = None
        watch.started_at = self._clock()
        self._say(f"haetae: {service.name} restarted (pid {service.pid})")

    def _say(self, line: str) -> None:
        print(line, file=self._out or sys.stderr, flush=True)
