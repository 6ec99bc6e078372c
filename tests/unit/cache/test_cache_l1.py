"""The in-process L1: bounds, W-TinyLFU admission, TTL, tags, incremental housekeeping."""

from __future__ import annotations

import random

import pytest

from haetae.cache import EvictionReason, FrequencySketch, L1Cache
from haetae.cache.l1 import ENTRY_OVERHEAD, estimate_size


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_get_set_delete_and_counters() -> None:
    c = L1Cache(100)
    assert c.get("a") is None
    c.set("a", {"x": 1})
    assert c.get("a") == {"x": 1}
    assert "a" in c and len(c) == 1
    assert c.hits == 1 and c.misses == 1
    assert c.delete("a") and not c.delete("a")
    assert c.evictions[EvictionReason.INVALIDATED] == 1
    assert c.bytes == 0


def test_bounded_by_entries() -> None:
    c = L1Cache(200)
    for i in range(5000):
        c.set(f"k{i}", i)
    assert len(c) <= 200
    assert c.evictions[EvictionReason.SIZE] >= 4800


def test_bounded_by_bytes() -> None:
    c = L1Cache(10_000, max_bytes=50_000)
    for i in range(2000):
        c.set(f"k{i}", "x" * 100)
    assert c.bytes <= 50_000
    assert len(c) < 2000


def test_too_big_entry_is_refused() -> None:
    c = L1Cache(10, max_bytes=1000)
    assert not c.set("big", "x" * 2000)
    assert "big" not in c


def test_frequent_keys_survive_a_scan() -> None:
    """TinyLFU admission: a one-off scan does not flush the hot set (LRU would)."""
    c = L1Cache(100)
    hot = [f"hot{i}" for i in range(50)]
    for _ in range(10):
        for k in hot:
            if c.get_entry(k) is None:
                c.set(k, 1)
    for i in range(10_000):
        c.set(f"scan{i}", 1)
    assert sum(k in c for k in hot) >= 45


def test_zipf_hit_ratio_beats_lru_reference() -> None:
    rng = random.Random(7)
    n = 5000
    weights = [1 / (i + 1) ** 0.9 for i in range(n)]
    trace = rng.choices(range(n), weights, k=60_000)
    c = L1Cache(50)
    hits = 0
    for k in map(str, trace):
        if c.get_entry(k) is None:
            c.set(k, 1, size=1)
        else:
            hits += 1
    # LRU gets ~24 % on this trace; W-TinyLFU clearly more.
    assert hits / len(trace) > 0.27


def test_ttl_and_stale_window() -> None:
    clock = FakeClock()
    c = L1Cache(100, clock=clock)
    c.set("a", 1, ttl=10, stale_ttl=5)
    e = c.get_entry("a")
    assert e is not None and e.is_fresh(clock.now)
    assert c.ttl("a") == pytest.approx(15)
    clock.now += 12
    e = c.get_entry("a")
    assert e is not None and not e.is_fresh(clock.now)
    clock.now += 4
    assert c.get_entry("a") is None
    assert c.evictions[EvictionReason.EXPIRED] == 1
    with pytest.raises(KeyError):
        c.ttl("a")
    c.set("forever", 1)
    assert c.ttl("forever") is None


def test_expired_entries_are_swept_incrementally_by_writes() -> None:
    clock = FakeClock()
    c = L1Cache(10_000, clock=clock)
    for i in range(1000):
        c.set(f"k{i}", i, ttl=1)
    clock.now += 5
    # Each write sweeps a bounded number: many writes clear the backlog without one big pause.
    for i in range(100):
        c.set(f"n{i}", i)
    assert len(c) == 100
    assert c.sweep_expired() == 0


def test_tags_and_prefixes() -> None:
    c = L1Cache(100)
    c.set("user:1", 1, tags=["users", "t1"])
    c.set("user:2", 2, tags=["users"])
    c.set("order:1", 3, tags=["t1"])
    assert sorted(c.tags()) == ["t1", "users"]
    assert c.delete_tag("users") == 2
    assert c.delete_tag("users") == 0
    assert c.keys() == ["order:1"]
    c.set("user:3", 3)
    assert c.delete_prefix("user:") == 1
    assert c.delete_tag("t1") == 1
    assert c.tags() == []


def test_rewrite_keeps_tags_consistent_and_bytes_exact() -> None:
    c = L1Cache(100)
    c.set("k", "abc", tags=["a"])
    c.set("k", "abcdef", tags=["b"])
    assert c.tags() == ["b"]
    assert c.bytes == 6 + len("k") + ENTRY_OVERHEAD
    c.clear()
    assert len(c) == 0 and c.bytes == 0


def test_rewrite_of_a_main_entry_stays_in_main() -> None:
    c = L1Cache(100)
    for i in range(300):
        c.set(f"k{i}", i)
        c.get(f"k{i}")
    survivors = c.keys()
    key = survivors[0]
    c.set(key, "new")
    assert c.get(key) == "new"
    assert len(c) <= 100


def test_on_evict_listener_and_validation() -> None:
    seen: list[tuple[str, EvictionReason]] = []
    c = L1Cache(10, on_evict=lambda k, r: seen.append((k, r)))
    for i in range(50):
        c.set(str(i), i)
    assert seen and all(r is EvictionReason.SIZE for _, r in seen)
    with pytest.raises(ValueError):
        L1Cache(0)


def test_estimate_size() -> None:
    assert estimate_size(b"abcd") == 4
    assert estimate_size("abc") == 3
    assert estimate_size({"a": 1}) == len('{"a":1}')
    assert estimate_size(object()) == 64


def test_sketch_counts_ages_and_resets_incrementally() -> None:
    s = FrequencySketch(16)
    assert s.frequency("a") == 0
    s.increment("a")
    assert s.frequency("a") == 1  # doorkeeper
    for _ in range(30):
        s.increment("a")
    assert 14 <= s.frequency("a") <= 16
    s.reset()
    assert s.frequency("a") <= 8
    # Crossing the sample size ages the sketch a row at a time.
    for i in range(200):
        s.increment(f"x{i % 7}")
    assert s.frequency("x1") <= 16
