"""HotKeys: Space-Saving top-k per namespace, fed by LayeredCache (misses, sampled hits)."""

from __future__ import annotations

import random

import pytest

from haetae.cache import L1Cache, LayeredCache
from haetae.cache.stats import HIT_SAMPLE, CacheStats, HotKeys


def test_space_saving_finds_the_heavy_hitters_in_bounded_memory() -> None:
    hot = HotKeys(capacity=20)
    rng = random.Random(1)
    for _ in range(50_000):
        if rng.random() < 0.5:
            hot.record(f"user:hot{rng.randrange(5)}")
        else:
            hot.record(f"user:cold{rng.randrange(100_000)}")
    top = [k for k, _ in hot.top("user", 5)]
    assert sorted(top) == [f"user:hot{i}" for i in range(5)]
    assert len(hot._counts["user"]) == 20
    assert hot.top("nothing") == []


def test_namespaces_are_separate_and_bounded() -> None:
    hot = HotKeys(capacity=4, max_namespaces=2)
    for _ in range(3):
        hot.record("a:1")
    hot.record("b:1")
    hot.record("plain")  # a third namespace ("") is ignored
    hot.record("b:2", 5)
    assert hot.namespaces() == ["a", "b"]
    assert hot.top("a") == [("a:1", 3)]
    assert hot.snapshot(1) == {"a": [{"key": "a:1", "count": 3}], "b": [{"key": "b:2", "count": 5}]}
    hot.clear()
    assert hot.snapshot() == {}
    with pytest.raises(ValueError):
        HotKeys(0)


def test_counts_decay_so_the_list_follows_the_present() -> None:
    hot = HotKeys(capacity=8, decay_every=100)
    for _ in range(99):
        hot.record("ns:old")
    hot.record("ns:once")  # 100th: halves everything; "once" drops out (below 1)
    assert hot.top("ns") == [("ns:old", 49.5)]
    for _ in range(10):
        for _ in range(60):
            hot.record("ns:new")
        for _ in range(40):
            hot.record("ns:new2")
    assert hot.top("ns", 1)[0][0] == "ns:new"
    assert "ns:old" not in dict(hot.top("ns"))


async def test_layered_cache_feeds_misses_and_sampled_hits() -> None:
    stats = CacheStats("t")
    cache = LayeredCache(L1Cache(100), stats=stats)

    async def load(key: str) -> str:
        return key

    await cache.get("page:a", load)  # miss
    for _ in range(4 * HIT_SAMPLE):
        await cache.get("page:a", load)  # hits: one in HIT_SAMPLE recorded, weighted
    await cache.get("page:b", load)
    top = dict(stats.hot.top("page"))
    assert top["page:b"] == 1
    assert 3 * HIT_SAMPLE <= top["page:a"] <= 5 * HIT_SAMPLE + 1
    snap = stats.snapshot(hot_keys=1)
    assert snap["hot_keys"] == {"page": [{"key": "page:a", "count": round(top["page:a"])}]}
    await cache.aclose()
