"""The demo app's cache is a real haetae.cache L1: degrading the app drops its hit ratio in the
series the CacheHitRatioDrop rule reads (haetae_cache_requests_total{cache="demo"})."""

from __future__ import annotations

import random

from prometheus_client import generate_latest

from haetae.demo_app import DemoMetrics, demo_cache_lookup


def _requests(m: DemoMetrics) -> dict[str, float]:
    out = {}
    for line in generate_latest(m.registry).decode().splitlines():
        if line.startswith('haetae_cache_requests_total{cache="demo",layer="l1"'):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = float(line.rsplit(" ", 1)[1])
    return out


def test_degraded_traffic_drops_the_demo_caches_hit_ratio() -> None:
    random.seed(4)
    m = DemoMetrics()
    for _ in range(3000):  # warm up
        demo_cache_lookup(m, degraded=False)
    before = _requests(m)
    healthy = sum(demo_cache_lookup(m, degraded=False) for _ in range(3000)) / 3000
    assert 0.75 < healthy < 0.9
    degraded = sum(demo_cache_lookup(m, degraded=True) for _ in range(3000)) / 3000
    assert 0.2 < degraded < 0.4
    after = _requests(m)
    assert after["hit"] - before["hit"] == round((healthy + degraded) * 3000)
    assert sum(after.values()) - sum(before.values()) == 6000
    assert len(m.cache) <= m.cache.max_entries
    hot = m.cache_stats.hot.snapshot(3)["item"]  # misses feed the hot keys (warm-up source)
    assert len(hot) == 3 and all(h["key"].startswith("item:") for h in hot)
