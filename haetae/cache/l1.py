"""The in-process L1: bounded by entries and bytes, W-TinyLFU admission and eviction (as in
Caffeine), per-key TTL, tags.

Layout: a small LRU *window* (1 % of the entries at first) takes every new key; what falls out of
it is a candidate for the *main* space (segmented LRU: probation + protected, 85 % of main
protected at first). A candidate enters main only if the frequency sketch says it is used more
often than main's eviction victim; a candidate that is itself frequent (>= 6) but not more so
than the victim gets in with probability 1/128, so an attacker cannot pin a victim by flooding
its sketch counters (Caffeine's hash-flooding jitter). A hit in probation promotes the entry to
protected.

The window/protected split adapts as Caffeine's does (``BoundedLocalCache.climb``): after each
sample of lookups the hit rate is compared with the previous sample's; if it improved the split
keeps moving the same way, otherwise it turns around. Steps start at 6.25 % of the entries (the
first one shrinks the window), decay by 0.98 per sample and restart at full size when the hit
rate jumps by >= 5 pt (the workload changed); at most 1000 entries move per step. Recency-biased
workloads (a moving hot set) grow the window towards LRU; frequency-biased ones (Zipf) keep it
small. Two measured departures from Caffeine (benchmarks/cache_l1.py, docs/performance.md): the
sample is 40 x ``max_entries`` lookups, not 10 x (at 10 x a sample's hit rate has a standard
error of ~0.5 pt at 1000 entries, more than one step changes it on Zipf, so the climber walked at
random and lost 0.5-1.5 pt there), and protected starts at 85 % of main, not 80 %. Climbing runs
on the write path, once per sample: the hit path is unchanged.

Housekeeping is incremental and bounded: expired entries go on timer buckets (one per second of
expiry) that each write sweeps a few keys of; reads check expiry themselves. Nothing walks the
whole cache on the event loop except explicit prefix invalidation and ``clear``.
"""

from __future__ import annotations

import enum
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from haetae.cache.sketch import FrequencySketch

# Rough per-entry bookkeeping overhead (entry object, dict slots), counted against max_bytes.
ENTRY_OVERHEAD = 120
_SWEEP_BUDGET = 32

_WINDOW, _PROBATION, _PROTECTED = 0, 1, 2

# Caffeine's constants (BoundedLocalCache): hill-climber step, its decay per sample, the hit-rate
# change that restarts the climb, the most entries moved between regions per adjustment, and the
# candidate frequency from which admission gets random jitter. Sample length and initial
# protected share are ours (see the module docstring).
CLIMB_STEP_PERCENT = 0.0625
CLIMB_STEP_DECAY = 0.98
CLIMB_RESTART_THRESHOLD = 0.05
CLIMB_SAMPLE_FACTOR = 40
PROTECTED_SHARE = 0.85
_TRANSFER_MAX = 1000
_ADMIT_JITTER_FREQUENCY = 6


class EvictionReason(enum.StrEnum):
    SIZE = "size"
    EXPIRED = "expired"
    INVALIDATED = "invalidated"


class Entry:
    __slots__ = (
        "bucket",
        "expires_at",
        "fresh_until",
        "key",
        "negative",
        "segment",
        "size",
        "tags",
        "value",
    )

    def __init__(
        self,
        key: str,
        value: Any,
        size: int,
        expires_at: float | None,
        fresh_until: float | None,
        tags: tuple[str, ...],
        negative: bool,
    ) -> None:
        self.key = key
        self.value = value
        self.size = size
        self.expires_at = expires_at
        self.fresh_until = fresh_until
        self.tags = tags
        self.negative = negative
        self.segment = _WINDOW
        self.bucket: int | None = None

    def is_fresh(self, now: float) -> bool:
        return self.fresh_until is None or now < self.fresh_until


def estimate_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray | str):
        return len(value)
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return 64


class L1Cache:
    def __init__(
        self,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[str, EvictionReason], None] | None = None,
        adaptive: bool = True,
        sample_factor: int = CLIMB_SAMPLE_FACTOR,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._on_evict = on_evict
        self._window_max = max(1, max_entries // 100)
        self._main_max = max(1, max_entries - self._window_max)
        self._protected_max = max(1, int(self._main_max * PROTECTED_SHARE))
        # Hill climber (see the module docstring): sample period, current step (signed: the
        # first move shrinks the window), previous sample's hit rate, counters at sample start.
        # ``adaptive=False`` keeps the initial split (benchmarks compare both).
        self._sample_period = sample_factor * max_entries
        self._climb_step = -CLIMB_STEP_PERCENT * max_entries
        self._prev_hit_rate = 0.0
        self._sample_hits = 0
        self._sample_misses = 0
        self._climb_at = self._sample_period if adaptive else float("inf")
        self._rng = random.Random()
        self._data: dict[str, Entry] = {}
        self._window: OrderedDict[str, Entry] = OrderedDict()
        self._probation: OrderedDict[str, Entry] = OrderedDict()
        self._protected: OrderedDict[str, Entry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._buckets: dict[int, set[str]] = {}
        self._sweep_from: int | None = None
        self._sketch = FrequencySketch(max_entries)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = dict.fromkeys(EvictionReason, 0)

    # -- reads ---------------------------------------------------------------------------------
    def get_entry(self, key: str) -> Entry | None:
        """The live entry (fresh or stale-but-unexpired) for ``key``; counts a hit or miss."""
        e = self._data.get(key)
        if e is None:
            self.misses += 1
            return None
        if e.expires_at is not None and e.expires_at <= self._clock():
            self._remove(e, EvictionReason.EXPIRED)
            self.misses += 1
            return None
        self.hits += 1
        self._sketch.increment(key)
        seg = e.segment
        if seg == _PROTECTED:
            self._protected.move_to_end(key)
        elif seg == _WINDOW:
            self._window.move_to_end(key)
        else:
            self._promote(e)
        return e

    def get(self, key: str, default: Any = None) -> Any:
        e = self.get_entry(key)
        if e is None or e.negative:
            return default
        return e.value

    def clock(self) -> float:
        return self._clock()

    def peek(self, key: str) -> Entry | None:
        """The entry without counting a hit or touching recency (tests, TTL command)."""
        e = self._data.get(key)
        if e is None or (e.expires_at is not None and e.expires_at <= self._clock()):
            return None
        return e

    def ttl(self, key: str) -> float | None:
        """Seconds left, None when the key lives until evicted; KeyError when absent."""
        e = self.peek(key)
        if e is None:
            raise KeyError(key)
        return None if e.expires_at is None else max(0.0, e.expires_at - self._clock())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.peek(key) is not None

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> list[str]:
        return list(self._data)

    def tags(self) -> list[str]:
        return list(self._tags)

    def tag_keys(self, tag: str) -> list[str]:
        return list(self._tags.get(tag, ()))

    # -- writes --------------------------------------------------------------------------------
    def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        stale_ttl: float = 0.0,
        tags: Iterable[str] = (),
        size: int | None = None,
        negative: bool = False,
    ) -> bool:
        """Store ``value``; fresh for ``ttl`` s, then served stale for ``stale_ttl`` s more.

        Returns False when the entry alone exceeds ``max_bytes`` (it is not stored).
        """
        weight = (estimate_size(value) if size is None else size) + len(key) + ENTRY_OVERHEAD
        old = self._data.get(key)
        if old is not None:
            self._remove(old, None)
        if weight > self.max_bytes:
            return False
        now = self._clock()
        fresh_until = None if ttl is None else now + ttl
        expires_at = None if fresh_until is None else fresh_until + stale_ttl
        e = Entry(key, value, weight, expires_at, fresh_until, tuple(tags), negative)
        self._data[key] = e
        if old is not None and old.segment != _WINDOW:
            # A rewrite keeps the key's place in main: it was admitted there already.
            e.segment = old.segment
            (self._protected if e.segment == _PROTECTED else self._probation)[key] = e
        else:
            self._window[key] = e
        self.bytes += weight
        for tag in e.tags:
            self._tags.setdefault(tag, set()).add(key)
        if expires_at is not None:
            b = int(expires_at)
            e.bucket = b
            self._buckets.setdefault(b, set()).add(key)
            if self._sweep_from is None or b < self._sweep_from:
                self._sweep_from = b
        self._sketch.increment(key)
        self._maintain()
        if self.hits + self.misses >= self._climb_at:
            self.climb()
        self.sweep_expired(_SWEEP_BUDGET, now)
        return True

    def delete(self, key: str) -> bool:
        e = self._data.get(key)
        if e is None:
            return False
        self._remove(e, EvictionReason.INVALIDATED)
        return True

    def delete_tag(self, tag: str) -> int:
        keys = self._tags.get(tag)
        if not keys:
            return 0
        n = 0
        for key in list(keys):
            n += self.delete(key)
        return n

    def delete_prefix(self, prefix: str) -> int:
        doomed = [k for k in self._data if k.startswith(prefix)]
        for key in doomed:
            self.delete(key)
        return len(doomed)

    def clear(self) -> int:
        n = len(self._data)
        self.evictions[EvictionReason.INVALIDATED] += n
        self._data.clear()
        self._window.clear()
        self._probation.clear()
        self._protected.clear()
        self._tags.clear()
        self._buckets.clear()
        self._sweep_from = None
        self.bytes = 0
        return n

    def sweep_expired(self, budget: int = _SWEEP_BUDGET, now: float | None = None) -> int:
        """Remove up to ``budget`` expired entries from the timer buckets; returns how many."""
        if self._sweep_from is None:
            return 0
        now = self._clock() if now is None else now
        limit = int(now)  # bucket b holds expiries in [b, b+1): only buckets < now are all due
        removed = 0
        b = self._sweep_from
        buckets = self._buckets
        while b < limit and removed < budget:
            keys = buckets.get(b)
            if not keys:
                buckets.pop(b, None)
                b += 1
                if not buckets:
                    self._sweep_from = None
                    return removed
                continue
            key = keys.pop()
            e = self._data.get(key)
            if e is not None and e.bucket == b:
                e.bucket = None
                self._remove(e, EvictionReason.EXPIRED)
                removed += 1
        self._sweep_from = b
        return removed

    # -- policy --------------------------------------------------------------------------------
    @property
    def window_max(self) -> int:
        """Entries the admission window may hold now (adapted by :meth:`climb`)."""
        return self._window_max

    def climb(self) -> int:
        """One hill-climbing step once a full sample of lookups was seen; returns the signed
        number of entries the window's quota changed by (0: no change, or sample incomplete)."""
        hits = self.hits - self._sample_hits
        misses = self.misses - self._sample_misses
        requests = hits + misses
        if requests < self._sample_period:
            self._climb_at = self.hits + self.misses + self._sample_period - requests
            return 0
        self._sample_hits = self.hits
        self._sample_misses = self.misses
        self._climb_at = self.hits + self.misses + self._sample_period
        if len(self._data) < self.max_entries // 2:
            # Not full enough for the split to matter (Caffeine waits for its sketch to exist).
            self._prev_hit_rate = 0.0
            return 0
        hit_rate = hits / requests
        change = hit_rate - self._prev_hit_rate
        amount = self._climb_step if change >= 0 else -self._climb_step
        if abs(change) >= CLIMB_RESTART_THRESHOLD:
            self._climb_step = CLIMB_STEP_PERCENT * self.max_entries * (1 if amount >= 0 else -1)
        else:
            self._climb_step = CLIMB_STEP_DECAY * amount
        self._prev_hit_rate = hit_rate
        adjustment = int(amount)
        if adjustment > 0:
            return self._increase_window(adjustment)
        if adjustment < 0:
            return -self._decrease_window(-adjustment)
        return 0

    def _increase_window(self, quota: int) -> int:
        quota = min(quota, self._protected_max - 1, _TRANSFER_MAX)
        if quota <= 0:
            return 0
        self._protected_max -= quota
        self._window_max += quota
        self._demote_protected()
        # Main's coldest entries become the window's newest (Caffeine moves them the same way),
        # so main shrinks with its quota without evicting anything; a quota main cannot fill
        # (main not full yet) is given back.
        window, probation, protected = self._window, self._probation, self._protected
        moved = 0
        while moved < quota:
            seg = probation or protected
            if not seg:
                break
            _, e = seg.popitem(last=False)
            e.segment = _WINDOW
            window[e.key] = e
            moved += 1
        self._protected_max += quota - moved
        self._window_max -= quota - moved
        self._main_max = max(1, self.max_entries - self._window_max)
        return moved

    def _decrease_window(self, quota: int) -> int:
        quota = min(quota, self._window_max - 1, _TRANSFER_MAX)
        if quota <= 0:
            return 0
        self._protected_max += quota
        self._window_max -= quota
        self._main_max = max(1, self.max_entries - self._window_max)
        # The window's oldest entries go to probation without an admission contest.
        window, probation = self._window, self._probation
        moved = 0
        while moved < quota and len(window) > self._window_max:
            _, e = window.popitem(last=False)
            e.segment = _PROBATION
            probation[e.key] = e
            moved += 1
        return quota

    def _demote_protected(self) -> None:
        protected, probation = self._protected, self._probation
        while len(protected) > self._protected_max:
            _, demoted = protected.popitem(last=False)
            demoted.segment = _PROBATION
            probation[demoted.key] = demoted

    def _promote(self, e: Entry) -> None:
        del self._probation[e.key]
        e.segment = _PROTECTED
        self._protected[e.key] = e
        if len(self._protected) > self._protected_max:
            _, demoted = self._protected.popitem(last=False)
            demoted.segment = _PROBATION
            self._probation[demoted.key] = demoted

    def _maintain(self) -> None:
        window = self._window
        while len(window) > self._window_max:
            _, cand = window.popitem(last=False)
            cand.segment = _PROBATION
            if len(self._probation) + len(self._protected) < self._main_max:
                self._probation[cand.key] = cand
                continue
            victims = self._probation or self._protected
            victim = victims[next(iter(victims))]
            cand_freq = self._sketch.frequency(cand.key)
            if cand_freq > self._sketch.frequency(victim.key) or (
                cand_freq >= _ADMIT_JITTER_FREQUENCY and self._rng.random() < 1 / 128
            ):
                self._remove(victim, EvictionReason.SIZE)
                self._probation[cand.key] = cand
            else:
                # Not yet in any segment: drop it from the index only.
                cand.segment = -1
                self._remove(cand, EvictionReason.SIZE)
        while self.bytes > self.max_bytes:
            seg = self._probation or self._window or self._protected
            self._remove(seg[next(iter(seg))], EvictionReason.SIZE)

    def _remove(self, e: Entry, reason: EvictionReason | None) -> None:
        key = e.key
        if self._data.get(key) is e:
            del self._data[key]
        seg = e.segment
        if seg == _WINDOW:
            self._window.pop(key, None)
        elif seg == _PROBATION:
            self._probation.pop(key, None)
        elif seg == _PROTECTED:
            self._protected.pop(key, None)
        self.bytes -= e.size
        for tag in e.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]
        if e.bucket is not None:
            bucket = self._buckets.get(e.bucket)
            if bucket is not None:
                bucket.discard(key)
        if reason is not None:
            self.evictions[reason] += 1
            if self._on_evict is not None:
                self._on_evict(key, reason)
