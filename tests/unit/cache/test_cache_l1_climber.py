"""The L1's adaptive window (Caffeine's hill climber) and admission jitter."""

from __future__ import annotations

import bisect
import itertools
import random

from haetae.cache import L1Cache
from haetae.cache.l1 import CLIMB_STEP_DECAY, CLIMB_STEP_PERCENT


def _check_invariants(c: L1Cache) -> None:
    segments = len(c._window) + len(c._probation) + len(c._protected)
    assert segments == len(c) <= c.max_entries
    assert c._window_max + c._main_max == c.max_entries
    assert c._window_max >= 1
    assert 1 <= c._protected_max < c._main_max
    assert all(e.segment == 0 for e in c._window.values())
    assert all(e.segment == 1 for e in c._probation.values())
    assert all(e.segment == 2 for e in c._protected.values())


def _sample(c: L1Cache, hit: bool, n: int) -> None:
    present = next(iter(c._protected or c._probation or c._window))
    for i in range(n):
        c.get_entry(present if hit else f"absent{i}")


def test_climber_waits_for_a_full_sample_and_a_filled_cache() -> None:
    c = L1Cache(1000, sample_factor=1)
    assert c.window_max == 10
    for i in range(100):  # a tenth full: the split does not matter yet
        c.set(f"k{i}", i)
    _sample(c, True, 999)
    assert c.climb() == 0 and c.window_max == 10
    _sample(c, True, 1)
    assert c.climb() == 0 and c.window_max == 10  # full sample, but cache under half full


def test_climber_shrinks_first_then_turns_around_and_decays() -> None:
    c = L1Cache(1000, sample_factor=1, adaptive=False)  # climb() called by hand
    for i in range(1000):
        c.set(f"k{i}", i)
        c.get_entry(f"k{i}")
    _check_invariants(c)
    c.hits = c.misses = 0
    c._sample_hits = c._sample_misses = 0
    step = CLIMB_STEP_PERCENT * 1000
    # Sample 1: hit rate up from 0 -> keep the initial direction (shrink), down to 1 entry.
    _sample(c, True, 1000)
    assert c.climb() == -9
    assert c.window_max == 1
    _check_invariants(c)
    # Sample 2: hit rate collapses (>= 5 pt): turn around, grow by a full step; restart the step.
    _sample(c, False, 1000)
    assert c.climb() == int(step)
    assert c.window_max == 1 + int(step)
    assert len(c._window) == c.window_max  # main's coldest entries moved into the window
    _check_invariants(c)
    # Sample 3: no change -> same direction, step decayed afterwards.
    _sample(c, False, 1000)
    assert c.climb() == int(step)
    assert c._climb_step == CLIMB_STEP_DECAY * step
    _check_invariants(c)
    # Sample 4: better again (hits) -> same direction still; sample 5: worse -> shrink.
    _sample(c, True, 1000)
    assert c.climb() > 0
    _sample(c, False, 1000)
    grown = c.window_max
    assert c.climb() < 0 and c.window_max < grown
    _check_invariants(c)


def test_window_quota_is_given_back_when_main_cannot_fill_it() -> None:
    c = L1Cache(1000, sample_factor=1, adaptive=False)
    for i in range(600):  # main holds fewer entries than the step asks to move
        c.set(f"k{i}", i)
    c._climb_step = 500.0
    c._prev_hit_rate = 1.0
    _sample(c, False, 1000)  # worse -> amount = -step = -500: shrink; window is tiny already
    assert c.climb() == -9
    c._climb_step = -500.0
    c._prev_hit_rate = 1.0
    _sample(c, False, 1000)  # worse -> amount = +500
    moved = c.climb()
    assert 0 < moved <= 500
    _check_invariants(c)


def test_bounds_hold_while_the_split_moves() -> None:
    rng = random.Random(3)
    c = L1Cache(300, sample_factor=1)
    for i in range(60_000):
        hot = (i // 3000) * 50  # a moving hot set: the climber keeps moving
        k = str(hot + rng.randrange(200) if rng.random() < 0.7 else rng.randrange(10_000))
        if c.get_entry(k) is None:
            c.set(k, i, size=10)
        if i % 997 == 0:
            _check_invariants(c)
    _check_invariants(c)
    assert c.window_max != 3  # it did move


def _shifting_trace(n: int, keys: int, capacity: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    cum = list(itertools.accumulate(1 / (i + 1) ** 0.9 for i in range(keys)))
    out = []
    for i in range(n):
        r = bisect.bisect(cum, rng.random() * cum[-1])
        out.append(str((r + (i // (10 * capacity)) * capacity) % keys))
    return out


def _ratio(trace: list[str], capacity: int, adaptive: bool) -> float:
    c = L1Cache(capacity, adaptive=adaptive, sample_factor=10)
    hits = 0
    for k in trace:
        if c.get_entry(k) is None:
            c.set(k, 1, size=1)
        else:
            hits += 1
    return hits / len(trace)


def test_adaptive_window_helps_on_a_moving_hot_set() -> None:
    """Recency-biased trace: the hot set moves by the cache's size every 10 x capacity requests;
    a static 1 % window keeps yesterday's frequent keys, the climber grows the window."""
    trace = _shifting_trace(150_000, 10_000, 100, seed=5)
    assert _ratio(trace, 100, adaptive=True) > _ratio(trace, 100, adaptive=False) + 0.003


def test_admission_jitter_lets_a_frequent_candidate_in_sometimes() -> None:
    class Rng:
        def __init__(self, value: float) -> None:
            self.value = value

        def random(self) -> float:
            return self.value

    class Sketch:
        """Fixed frequencies: candidates below main's entries, one of them frequent (>= 6)."""

        def increment(self, key: str) -> None:
            pass

        def frequency(self, key: str) -> int:
            return 9 if key.startswith("main") else 7 if key == "cand" else 1

    for value, admitted in ((0.0, True), (0.5, False)):
        c = L1Cache(200, adaptive=False)
        c._rng = Rng(value)  # type: ignore[assignment]
        c._sketch = Sketch()  # type: ignore[assignment]
        for i in range(200):
            c.set(f"main{i}", i)
        c.set("cand", 1)
        c.set("filler0", 0)
        c.set("filler1", 1)  # "cand" leaves the 2-entry window and meets a victim
        assert ("cand" in c) is admitted
        c.set("filler2", 2)
        assert "filler0" not in c  # infrequent candidates get no jitter
