"""The agent-hosted L1's stats as ordinary samples, so they travel in reports unchanged.

Not in the by-name table: it exists only when the ``cache`` section is enabled, and is built
from the running cache rather than from config (``agent.cache_host`` adds it to the runner).

``haetae_cache_requests_total{cache,layer,outcome}`` is the series every haetae cache exports
(haetae.cache.stats' Prometheus collector: the control plane's own, an app's through the app
scrape) and what the default CacheHitRatioDrop rule reads; ``haetae_cache_hits_total`` /
``haetae_cache_misses_total{layer}`` are the per-agent summary ``GET /admin/cache/stats`` shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from agent.collectors.base import Collector, Sample

if TYPE_CHECKING:
    from agent.http.client import HttpClient
    from agent.settings import AgentSettings
    from haetae.cache import CacheStats

HITS = "haetae_cache_hits_total"
MISSES = "haetae_cache_misses_total"
EVICTIONS = "haetae_cache_evictions_total"
BYTES = "haetae_cache_bytes"
ENTRIES = "haetae_cache_entries"
BREAKER_OPEN = "haetae_cache_l2_breaker_open"
REQUESTS = "haetae_cache_requests_total"


class CacheCollector(Collector):
    name: ClassVar[str] = "cache"

    def __init__(self, stats: CacheStats) -> None:
        self.stats = stats

    @classmethod
    def from_config(cls, config: AgentSettings, session: HttpClient) -> Collector | None:
        return None  # built by agent.cache_host from the running cache

    async def collect(self) -> list[Sample]:
        # Reads plain counters only: CacheStats.snapshot() keeps a window history of its own.
        stats, l1 = self.stats, self.stats.l1
        samples: list[Sample] = []
        name = stats.name
        if l1 is not None:
            l1_layer = {"layer": "l1"}
            samples += [
                Sample(REQUESTS, {"cache": name, "layer": "l1", "outcome": "hit"}, float(l1.hits)),
                Sample(
                    REQUESTS, {"cache": name, "layer": "l1", "outcome": "miss"}, float(l1.misses)
                ),
                Sample(HITS, l1_layer, float(l1.hits)),
                Sample(MISSES, l1_layer, float(l1.misses)),
                Sample(BYTES, l1_layer, float(l1.bytes)),
                Sample(ENTRIES, l1_layer, float(len(l1))),
            ]
            samples += [
                Sample(EVICTIONS, {"layer": "l1", "reason": reason.value}, float(n))
                for reason, n in l1.evictions.items()
            ]
        hits = misses = 0
        for (layer, outcome), n in stats.counts.items():
            if layer.value != "l2":
                continue
            labels = {"cache": name, "layer": "l2", "outcome": outcome.value}
            samples.append(Sample(REQUESTS, labels, float(n)))
            if outcome.value in ("hit", "stale", "negative"):
                hits += n
            else:
                misses += n
        l2_layer = {"layer": "l2"}
        samples += [Sample(HITS, l2_layer, float(hits)), Sample(MISSES, l2_layer, float(misses))]
        if stats.breaker is not None:
            is_open = stats.breaker.state.value != "closed"
            samples.append(Sample(BREAKER_OPEN, {"layer": "l2"}, 1.0 if is_open else 0.0))
        return samples
