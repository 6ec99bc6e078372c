"""The read path: L1 -> L2 -> loader, single-flight per key (in-process, and across processes
with a short Redis lease), stale-while-revalidate and negative caching.

A loader returning ``None`` means "no such value": that answer is cached too, for
``negative_ttl_s``, so a hot missing key does not hammer the origin. L2 trouble (down, hanging,
erroring) never reaches callers: every L2 call runs under a circuit breaker with a short timeout
and counts as a miss when it fails.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from haetae.cache import serde
from haetae.cache.l1 import L1Cache
from haetae.cache.l2 import RedisL2
from haetae.cache.stats import HIT_SAMPLE, CacheStats, Layer, Outcome
from haetae.resilience import BreakerConfig, CircuitBreaker

_HIT_SAMPLE_MASK = HIT_SAMPLE - 1  # HIT_SAMPLE is a power of two

T = TypeVar("T")
log = logging.getLogger("haetae.cache")


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a loader may return instead of a bare value, to set tags or its own TTL."""

    value: Any
    tags: tuple[str, ...] = ()
    ttl_s: float | None = None


Loader = Callable[[str], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    ttl_s: float = 60.0
    # After ttl_s a value is served stale for this long while one refresh runs in the background.
    stale_ttl_s: float = 30.0
    negative_ttl_s: float = 5.0
    # Cross-process single flight: the holder of the lease loads; others wait for its value.
    lease_ms: int = 2_000
    lease_poll_s: float = 0.005


@dataclass(slots=True)
class _Result:
    value: Any
    negative: bool


_UNAVAILABLE = object()
# Keys per L2 read when a warm-up fills the L1.
_FILL_SLICE = 64


class LayeredCache:
    def __init__(
        self,
        l1: L1Cache,
        l2: RedisL2 | None = None,
        *,
        policy: CachePolicy | None = None,
        breaker: CircuitBreaker | None = None,
        stats: CacheStats | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self.policy = policy or CachePolicy()
        self.breaker = breaker or CircuitBreaker("cache-l2", BreakerConfig())
        self.stats = stats or CacheStats()
        self.stats.l1 = l1
        self.stats.breaker = self.breaker
        # Hot keys: every L1 miss, and one hit in HIT_SAMPLE (by the L1's own hit counter).
        self._hot = self.stats.hot
        self._wall = wall_clock
        self._l1_clock = l1._clock
        self._inflight: dict[str, asyncio.Task[_Result]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._loaders: dict[str, Loader] = {}
        # Bumped whenever an invalidation is applied here: a load that started before it must
        # not put what it read into the L1 afterwards.
        self.epoch = 0

    # -- loaders -------------------------------------------------------------------------------
    def register_loader(self, namespace: str, loader: Loader) -> None:
        """``loader`` serves every key ``"<namespace>:..."`` read without an explicit loader."""
        self._loaders[namespace] = loader

    def loader_for(self, key: str) -> Loader | None:
        namespace, sep, _ = key.partition(":")
        return self._loaders.get(namespace) if sep else None

    @property
    def namespaces(self) -> list[str]:
        return sorted(self._loaders)

    # -- reads ---------------------------------------------------------------------------------
    async def get(self, key: str, loader: Loader | None = None, default: Any = None) -> Any:
        l1 = self.l1
        e = l1.get_entry(key)
        if e is not None:
            if not l1.hits & _HIT_SAMPLE_MASK:
                self._hot.record(key, HIT_SAMPLE)
            fresh_until = e.fresh_until
            if fresh_until is not None and self._l1_clock() >= fresh_until:
                self.stats.l1_stale += 1
                self._revalidate(key, loader)
            if e.negative:
                self.stats.l1_negative += 1
                return default
            return e.value
        self._hot.record(key)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(key, loader, True))
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        # shield: one caller giving up must not cancel the load the others are waiting for.
        result = await asyncio.shield(task)
        return default if result.negative else result.value

    async def get_many(self, keys: Sequence[str], loader: Loader | None = None) -> list[Any]:
        return list(await asyncio.gather(*(self.get(k, loader) for k in keys)))

    def _forget(self, key: str, task: asyncio.Task[_Result]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so a load nobody awaited any more does not log "never retrieved".
            log.debug("cache load of %r failed: %r", key, task.exception())

    def _revalidate(self, key: str, loader: Loader | None) -> None:
        if key in self._inflight:
            return
        task = asyncio.get_running_loop().create_task(self._fetch(key, loader, False))
        self._inflight[key] = task
        task.add_done_callback(functools.partial(self._forget, key))

    async def _fetch(self, key: str, loader: Loader | None, accept_stale: bool) -> _Result:
        epoch = self.epoch
        rec = await self._l2_get(key)
        if rec is not None:
            now = self._wall()
            if rec.fresh_until > now:
                self.stats.count(Layer.L2, Outcome.NEGATIVE if rec.negative else Outcome.HIT)
                self._fill_l1(key, rec.value, rec.fresh_until - now, rec.negative, rec.size, epoch)
                return _Result(rec.value, rec.negative)
            if accept_stale:
                self.stats.count(Layer.L2, Outcome.STALE)
                self._fill_l1(key, rec.value, 0.0, rec.negative, rec.size, epoch)
                self._revalidate_after(key, loader)
                return _Result(rec.value, rec.negative)
        elif rec is None:
            self.stats.count(Layer.L2, Outcome.MISS)
        loader = loader or self.loader_for(key)
        if loader is None:
            return _Result(None, True)
        return await self._load(key, loader, epoch)

    def _revalidate_after(self, key: str, loader: Loader | None) -> None:
        # Called from inside the in-flight fetch: refresh once that fetch is done and forgotten
        # (its own done-callback, added first, removes it from the in-flight table).
        task = asyncio.current_task()
        assert task is not None
        task.add_done_callback(lambda _t: self._revalidate(key, loader))

    async def _load(self, key: str, loader: Loader, epoch: int) -> _Result:
        token = uuid.uuid4().hex
        leased = await self._l2_call(
            lambda: self._l2().acquire_lease(key, token, self.policy.lease_ms)
        )
        if leased is False:
            # Someone else in the fleet is loading it: wait for their value, then give up waiting.
            rec = await self._await_peer_load(key)
            if rec is not None:
                self.stats.count(Layer.L2, Outcome.NEGATIVE if rec.negative else Outcome.HIT)
                ttl = rec.fresh_until - self._wall()
                self._fill_l1(key, rec.value, ttl, rec.negative, rec.size, epoch)
                return _Result(rec.value, rec.negative)
        start = time.perf_counter()
        try:
            loaded = await loader(key)
        except Exception:
            self.stats.count(Layer.LOADER, Outcome.ERROR)
            raise
        finally:
            self.stats.observe(Layer.LOADER, time.perf_counter() - start)
            if leased is True:
                self._spawn(self._l2_call(lambda: self._l2().release_lease(key, token)))
        tags: tuple[str, ...] = ()
        ttl = self.policy.ttl_s
        if isinstance(loaded, Loaded):
            tags = loaded.tags
            ttl = loaded.ttl_s if loaded.ttl_s is not None else ttl
            loaded = loaded.value
        negative = loaded is None
        if negative:
            ttl = self.policy.negative_ttl_s
        self.stats.count(Layer.LOADER, Outcome.NEGATIVE if negative else Outcome.HIT)
        if epoch == self.epoch:
            await self._store(key, loaded, ttl=ttl, tags=tags, negative=negative)
        return _Result(loaded, negative)

    async def _await_peer_load(self, key: str) -> serde.Decoded | None:
        deadline = time.monotonic() + self.policy.lease_ms / 1000
        pause = self.policy.lease_poll_s
        while time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
            rec = await self._l2_get(key)
            if rec is not None and rec.fresh_until > self._wall():
                return rec
            if self.breaker.state.value != "closed":
                return None
        return None

    # -- writes --------------------------------------------------------------------------------
    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl_s: float | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        """Write through both layers (the L2 write is skipped quietly when Redis is unhealthy)."""
        await self._store(
            key,
            value,
            ttl=self.policy.ttl_s if ttl_s is None else ttl_s,
            tags=tuple(tags),
            negative=False,
        )

    async def _store(
        self, key: str, value: Any, *, ttl: float, tags: tuple[str, ...], negative: bool
    ) -> None:
        fresh_until = self._wall() + ttl
        raw = serde.encode(value, fresh_until, negative=negative)
        stale = 0.0 if negative else self.policy.stale_ttl_s
        self.l1.set(
            key, value, ttl=ttl, stale_ttl=stale, tags=tags, size=len(raw), negative=negative
        )
        if self.l2 is not None:
            ttl_ms = max(1, int((ttl + stale) * 1000))
            await self._l2_call(lambda: self._l2().set(key, raw, ttl_ms=ttl_ms, tags=tags))

    def _fill_l1(
        self, key: str, value: Any, ttl: float, negative: bool, size: int, epoch: int
    ) -> None:
        if epoch != self.epoch:
            return
        stale = 0.0 if negative else self.policy.stale_ttl_s
        self.l1.set(key, value, ttl=max(0.0, ttl), stale_ttl=stale, size=size, negative=negative)

    # -- local invalidation (the Invalidator drives these for remote ones) --------------------
    def apply_invalidation(
        self, keys: Iterable[str] = (), tags: Iterable[str] = (), prefixes: Iterable[str] = ()
    ) -> int:
        self.epoch += 1
        n = 0
        for key in keys:
            n += self.l1.delete(key)
        for tag in tags:
            n += self.l1.delete_tag(tag)
        for prefix in prefixes:
            n += self.l1.delete_prefix(prefix)
        return n

    async def fill_from_l2(self, keys: Sequence[str]) -> int:
        """Copy the fresh values of ``keys`` from L2 into the L1 (a fleet warm-up); how many.

        Not lookups: no hit/miss counts and no hot-key records, so a warm-up does not make
        the keys it names look hot. A value invalidated while the read was in flight is not
        filled (the epoch check, as for any L2 read)."""
        filled = 0
        if self.l2 is None:
            return filled
        # In slices: each read stays well inside the breaker's per-call timeout.
        for start in range(0, len(keys), _FILL_SLICE):
            chunk = keys[start : start + _FILL_SLICE]
            epoch = self.epoch
            raws = await self._l2_call(functools.partial(self._l2().mget, chunk))
            if raws is _UNAVAILABLE:
                continue
            assert isinstance(raws, list)
            now = self._wall()
            for key, raw in zip(chunk, raws, strict=True):
                rec = serde.decode(raw) if raw else None
                if rec is None or rec.negative or rec.fresh_until <= now:
                    continue
                self._fill_l1(key, rec.value, rec.fresh_until - now, False, rec.size, epoch)
                filled += key in self.l1
        return filled

    def flush_l1(self) -> int:
        self.epoch += 1
        return self.l1.clear()

    # -- L2 under the breaker ------------------------------------------------------------------
    def _l2(self) -> RedisL2:
        assert self.l2 is not None
        return self.l2

    async def _l2_call(self, fn: Callable[[], Awaitable[T]]) -> T | object:
        """``fn()``'s result, or ``_UNAVAILABLE`` when there is no L2 or it failed/is open."""
        if self.l2 is None or not self.breaker.allow():
            return _UNAVAILABLE
        start = time.perf_counter()
        try:
            return await self.breaker.run_allowed(fn)
        except Exception as exc:
            self.stats.count(Layer.L2, Outcome.ERROR)
            log.debug("L2 call failed: %r", exc)
            return _UNAVAILABLE
        finally:
            self.stats.observe(Layer.L2, time.perf_counter() - start)

    async def _l2_get(self, key: str) -> serde.Decoded | None:
        raw = await self._l2_call(lambda: self._l2().get(key))
        if raw is _UNAVAILABLE or raw is None:
            return None
        assert isinstance(raw, bytes)
        return serde.decode(raw)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- warm-up -------------------------------------------------------------------------------
    async def warm(
        self,
        keys: Sequence[str],
        *,
        concurrency: int = 32,
        on_progress: Callable[[str, bool], None] | None = None,
    ) -> tuple[int, int]:
        """Load ``keys`` (through their namespace loaders); returns (loaded, failed)."""
        sem = asyncio.Semaphore(concurrency)
        done = [0, 0]

        async def one(key: str) -> None:
            async with sem:
                ok = True
                try:
                    await self.get(key)
                except Exception as exc:
                    ok = False
                    log.warning("warm-up of %r failed: %r", key, exc)
                done[0 if ok else 1] += 1
                if on_progress is not None:
                    on_progress(key, ok)

        await asyncio.gather(*(one(k) for k in keys))
        return done[0], done[1]

    async def aclose(self) -> None:
        tasks = list(self._background) + list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
