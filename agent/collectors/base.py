"""What a collector is, the sample it yields, and the by-name registry config chooses from."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

from agent.worker import Worker

if TYPE_CHECKING:
    from agent.http.client import HttpClient
    from agent.settings import AgentSettings


@dataclass(slots=True)
class Sample:
    """One observation. ``ts`` (unix seconds) is None when it is the report's collection time."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    value: float = 0.0
    ts: float | None = None


class Collector(ABC):
    """One source of samples. Subclasses set ``name`` and are added to ``COLLECTORS``."""

    name: ClassVar[str]
    # The runner cancels a collection that takes longer than this.
    timeout_s: float = 5.0

    @classmethod
    @abstractmethod
    def from_config(cls, config: AgentSettings, session: HttpClient) -> Collector | None:
        """Build from config, or None when its target is not configured (nothing to watch)."""

    @abstractmethod
    async def collect(self) -> list[Sample]:
        """Gather the current samples; raise ``CollectorError`` to report a partial failure."""


class BlockingCollector(Collector):
    """A collector whose work is blocking syscalls (psutil), run in a worker thread.

    The thread keeps the event loop (and the agent's /metrics) responsive and lets the runner's
    timeout fire; a collection still stuck from an earlier cycle makes the next one fail fast
    instead of piling up threads.

    A subclass may answer from ``collect_quick`` on the event loop instead, when the work at hand
    cannot block (reads of /proc files, which the kernel answers from memory): a hand-off to a
    thread and back costs more CPU than such a collection itself. Returning None sends the
    collection to the thread.
    """

    def __init__(self) -> None:
        self._busy = threading.Lock()
        self._worker = Worker(f"haetae-collector-{self.name}")

    @abstractmethod
    def collect_blocking(self) -> list[Sample]:
        """Gather the samples; runs in a worker thread, never concurrently with itself."""

    def collect_quick(self) -> list[Sample] | None:
        """The samples if they can be had without blocking, else None (the default)."""
        return None

    async def collect(self) -> list[Sample]:
        # Checked here, not in the thread, so a stuck call is not queued behind.
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"{self.name}: the previous collection is still running")
        try:
            quick = self.collect_quick()
        except BaseException:
            self._busy.release()
            raise
        if quick is not None:
            self._busy.release()
            return quick
        return await self._worker.run(self._collect_guarded)

    def _collect_guarded(self) -> list[Sample]:
        try:
            return self.collect_blocking()
        finally:
            self._busy.release()


COLLECTORS: dict[str, type[Collector]] = {}

C = TypeVar("C", bound=type[Collector])


def register(cls: C) -> C:
    """Class decorator: make ``cls`` selectable by its ``name`` in the ``collectors`` list."""
    if cls.name in COLLECTORS:
        raise ValueError(f"collector name {cls.name!r} registered twice")
    COLLECTORS[cls.name] = cls
    return cls


def build_collectors(
    config: AgentSettings,
    session: HttpClient,
    *,
    registry: dict[str, type[Collector]] | None = None,
) -> list[Collector]:
    """Instantiate the configured collectors, in config order, skipping those with no target."""
    table = COLLECTORS if registry is None else registry
    built: list[Collector] = []
    for i, name in enumerate(config.collectors):
        cls = table.get(name)
        if cls is None:
            from haetae.config import ConfigError  # only on this error path: keeps pydantic out

            known = ", ".join(sorted(table))
            raise ConfigError(f"unknown collector {name!r} (known: {known})", key=f"collectors.{i}")
        collector = cls.from_config(config, session)
        if collector is not None:
            built.append(collector)
    return built
