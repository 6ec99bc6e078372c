"""Warm-up jobs: put named keys into every L1 of the fleet before the traffic asks for them.

A job takes two steps. Keys of a namespace with a loader are read through this process's cache
(L1 -> L2 -> loader), so their values are in L2 afterwards. Keys of a *stored* namespace, whose
values another component writes to L2 (the link analyzer's results), are only looked up there.
Then warm entries on the invalidation stream name the keys found, every L1 that follows the
stream (other control planes, link-analyzer workers, agents' L1s) copies them from L2, and the
job waits (bounded) until each connected L1 has acknowledged: its view lists which did.

Keys come from the caller, a configured set, or a namespace's ``hot`` keys (this process's and
every connected node's lookup statistics, plus a source the namespace registers) or ``recent``
keys (a source the namespace registers: the link analyzer's latest results).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from haetae.cache import serde
from haetae.cache.invalidation import InvalidationBus, InvalidationError
from haetae.cache.layered import LayeredCache

log = logging.getLogger("haetae.cache.warmup")

# limit -> at most that many keys, best first.
KeyLister = Callable[[int], Awaitable[list[str]]]

SOURCES = ("hot", "recent")
_MAX_FAILED_KEYS = 100


@dataclass(frozen=True)
class StoredNamespace:
    """A namespace warmed from L2 only (no loader), with its own key sources if any."""

    hot: KeyLister | None = None
    recent: KeyLister | None = None


@dataclass
class WarmupJob:
    id: str
    keys: list[str]
    source: str
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    done: int = 0
    failed: int = 0
    failed_keys: list[str] = field(default_factory=list)
    # The fleet step: the warm entry, and the connected L1s that did / did not confirm it.
    l1s: dict[str, Any] | None = None
    error: str | None = None

    def progress(self, key: str, ok: bool) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
            if len(self.failed_keys) < _MAX_FAILED_KEYS:
                self.failed_keys.append(key)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "status": "running" if self.finished_at is None else "finished",
            "total": len(self.keys),
            "done": self.done,
            "failed": self.failed,
            "failed_keys": self.failed_keys,
            "l1s": self.l1s,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


def namespace_of(key: str) -> str:
    namespace, sep, _ = key.partition(":")
    return namespace if sep else ""


class Warmer:
    """Runs warm-up jobs on ``cache`` (and through ``bus`` on every other L1); keeps the last
    ``max_finished`` finished jobs for their status."""

    def __init__(
        self,
        cache: LayeredCache,
        bus: InvalidationBus | None,
        *,
        concurrency: int = 32,
        fleet_timeout_s: float = 5.0,
        max_finished: int = 100,
    ) -> None:
        self.cache = cache
        self.bus = bus
        self.concurrency = concurrency
        self.fleet_timeout_s = fleet_timeout_s
        self.max_finished = max_finished
        self.jobs: dict[str, WarmupJob] = {}
        self._stored: dict[str, StoredNamespace] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what can be warmed --------------------------------------------------------------------
    def register_stored(
        self, namespace: str, *, hot: KeyLister | None = None, recent: KeyLister | None = None
    ) -> None:
        self._stored[namespace] = StoredNamespace(hot, recent)

    def warmable(self, key: str) -> bool:
        return self.cache.loader_for(key) is not None or namespace_of(key) in self._stored

    @property
    def namespaces(self) -> list[str]:
        return sorted({*self.cache.namespaces, *self._stored})

    def sources(self, namespace: str) -> list[str]:
        stored = self._stored.get(namespace)
        return ["hot", "recent"] if stored is not None and stored.recent else ["hot"]

    async def keys_from(self, source: str, namespace: str, limit: int) -> list[str]:
        """The ``limit`` best keys of ``namespace`` by ``source`` (``hot`` or ``recent``)."""
        stored = self._stored.get(namespace)
        if source == "recent":
            if stored is None or stored.recent is None:
                return []
            return (await stored.recent(limit))[:limit]
        # Hot: a key's highest count in any view (the views overlap: one node's L1 is seen
        # both in its heartbeat and, in process, through the namespace's own source).
        counts: dict[str, float] = dict(self.cache.stats.hot.top(namespace, limit))
        if stored is not None and stored.hot is not None:
            for rank, key in enumerate(await stored.hot(limit)):
                counts[key] = max(counts.get(key, 0.0), float(limit - rank))
        for key, count in await self._fleet_hot(namespace):
            counts[key] = max(counts.get(key, 0.0), count)
        return sorted(counts, key=lambda k: (-counts[k], k))[:limit]

    async def _fleet_hot(self, namespace: str) -> list[tuple[str, float]]:
        if self.bus is None:
            return []
        try:
            nodes = await self.bus.node_stats()
        except Exception as exc:  # Redis trouble: this process's view still counts
            log.debug("no fleet hot keys: %r", exc)
            return []
        out = []
        for node, snap in nodes.items():
            if node == self.bus.node_id:
                continue
            for item in (snap.get("hot_keys") or {}).get(namespace, []):
                if isinstance(item, dict) and isinstance(item.get("key"), str):
                    out.append((item["key"], float(item.get("count") or 0)))
        return out

    # -- jobs ----------------------------------------------------------------------------------
    def start(self, keys: Sequence[str], source: str) -> WarmupJob:
        job = WarmupJob(uuid.uuid4().hex[:12], list(keys), source)
        self.jobs[job.id] = job
        finished = [j for j in self.jobs.values() if j.finished_at is not None]
        for old in finished[: max(0, len(finished) - self.max_finished)]:
            del self.jobs[old.id]
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: WarmupJob) -> None:
        try:
            loaded = [k for k in job.keys if self.cache.loader_for(k) is not None]
            stored = [k for k in job.keys if self.cache.loader_for(k) is None]
            ok: list[str] = []

            def progress(key: str, success: bool) -> None:
                job.progress(key, success)
                if success:
                    ok.append(key)

            await self.cache.warm(loaded, concurrency=self.concurrency, on_progress=progress)
            for key, present in zip(stored, await self._in_l2(stored), strict=True):
                progress(key, present)
            await self._reach_fleet(job, ok)
        except Exception as exc:
            log.warning("warm-up %s failed: %r", job.id, exc)
            job.error = str(exc) or type(exc).__name__
        finally:
            job.finished_at = time.time()

    async def _in_l2(self, keys: list[str]) -> list[bool]:
        """Whether L2 holds a fresh value for each key (stored namespaces have no origin)."""
        l2 = self.cache.l2
        if l2 is None or not keys:
            return [False] * len(keys)
        now = time.time()
        raws = await l2.mget(keys)
        decoded = [serde.decode(raw) if raw else None for raw in raws]
        return [d is not None and not d.negative and d.fresh_until > now for d in decoded]

    async def _reach_fleet(self, job: WarmupJob, keys: list[str]) -> None:
        if self.bus is None or not keys:
            return
        try:
            entry_id = await self.bus.warm(keys)
            if entry_id is None:
                return
            result = await self.bus.wait_applied(entry_id, self.fleet_timeout_s)
        except (InvalidationError, RedisError, OSError) as exc:
            job.error = f"the L1s were not reached: {exc}"
            return
        job.l1s = {"entry_id": entry_id, "applied": result.applied, "pending": result.pending}

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
