"""Per-layer cache statistics: plain counters on the hot path, exported to an injected
Prometheus registry by a collector that reads them at scrape time.

``Counter.labels(...).inc()`` costs about a microsecond; an L1 hit must cost less than that in
total, so hits and misses are ints here and become Prometheus samples only when scraped. Slow
layers (L2, the loader) also feed latency histograms, where a microsecond does not matter.

:class:`HotKeys` keeps the hottest keys per namespace (Space-Saving top-k, fed with every L1
miss and one L1 hit in ``HIT_SAMPLE``), for the stats API and as a warm-up source.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from haetae.cache.l1 import L1Cache
    from haetae.resilience import CircuitBreaker


class Layer(enum.StrEnum):
    L1 = "l1"
    L2 = "l2"
    LOADER = "loader"


class Outcome(enum.StrEnum):
    HIT = "hit"
    MISS = "miss"
    STALE = "stale"
    NEGATIVE = "negative"
    ERROR = "error"


# One L1 hit in this many is fed to HotKeys (weighted by it): a decrement on the hit path.
HIT_SAMPLE = 16


class HotKeys:
    """The ``capacity`` most frequent keys of each namespace (the part before the first ``:``;
    keys without one count under ``""``), by the Space-Saving algorithm: a key not tracked
    replaces the least counted one and inherits its count (an overestimate bounded by it), so
    memory is ``capacity`` keys per namespace whatever the key space. Counts are halved every
    ``decay_every`` recorded lookups, so the list follows what is hot now. At most
    ``max_namespaces`` namespaces are tracked (a new one beyond is ignored)."""

    def __init__(
        self, capacity: int = 64, *, max_namespaces: int = 64, decay_every: int = 100_000
    ) -> None:
        if capacity < 1 or max_namespaces < 1 or decay_every < 1:
            raise ValueError("capacity, max_namespaces and decay_every must be positive")
        self.capacity = capacity
        self.max_namespaces = max_namespaces
        self.decay_every = decay_every
        self._counts: dict[str, dict[str, float]] = {}
        self._recorded = 0

    def record(self, key: str, weight: float = 1.0) -> None:
        namespace, sep, _ = key.partition(":")
        if not sep:
            namespace = ""
        counts = self._counts.get(namespace)
        if counts is None:
            if len(self._counts) >= self.max_namespaces:
                return
            counts = self._counts[namespace] = {}
        n = counts.get(key)
        if n is not None:
            counts[key] = n + weight
        elif len(counts) < self.capacity:
            counts[key] = weight
        else:
            victim = min(counts, key=counts.__getitem__)
            counts[key] = counts.pop(victim) + weight
        self._recorded += 1
        if self._recorded >= self.decay_every:
            self._decay()

    def _decay(self) -> None:
        self._recorded = 0
        for counts in self._counts.values():
            for k in list(counts):
                n = counts[k] / 2
                if n < 1:
                    del counts[k]
                else:
                    counts[k] = n

    def namespaces(self) -> list[str]:
        return sorted(self._counts)

    def top(self, namespace: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` hottest keys of ``namespace`` with their (estimated) lookup counts."""
        counts = self._counts.get(namespace, {})
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def snapshot(self, n: int = 10) -> dict[str, list[dict[str, Any]]]:
        return {
            ns: [{"key": k, "count": round(c)} for k, c in self.top(ns, n)]
            for ns in self.namespaces()
        }

    def clear(self) -> None:
        self._counts.clear()
        self._recorded = 0


_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class CacheStats:
    """Counters for one named cache; ``l1``/``breaker`` are read for sizes and state."""

    def __init__(
        self,
        name: str = "default",
        registry: CollectorRegistry | None = None,
        *,
        window_s: float = 60.0,
    ) -> None:
        self.name = name
        self.l1: L1Cache | None = None
        self.breaker: CircuitBreaker | None = None
        self.counts: dict[tuple[Layer, Outcome], int] = {
            (layer, outcome): 0 for layer in (Layer.L2, Layer.LOADER) for outcome in Outcome
        }
        self.l1_stale = 0
        self.l1_negative = 0
        self.hot = HotKeys()
        self._window_s = window_s
        self._history: deque[tuple[float, int, int]] = deque()
        self.latency = Histogram(
            "haetae_cache_latency_seconds",
            "Time spent in a cache layer per call (L2 round trips and loader calls)",
            ["cache", "layer"],
            buckets=_LATENCY_BUCKETS,
            registry=None,
        )
        self._latency_children = {
            layer: self.latency.labels(name, layer.value) for layer in (Layer.L2, Layer.LOADER)
        }
        if registry is not None:
            registry.register(_StatsCollector(self))

    def count(self, layer: Layer, outcome: Outcome) -> None:
        self.counts[layer, outcome] += 1

    def observe(self, layer: Layer, seconds: float) -> None:
        self._latency_children[layer].observe(seconds)

    def snapshot(self, now: float | None = None, *, hot_keys: int = 10) -> dict[str, Any]:
        """Everything the API shows: per layer hits, misses, ratios (total and over the window),
        and the ``hot_keys`` hottest keys per namespace."""
        now = time.monotonic() if now is None else now
        l1 = self.l1
        l1_hits = l1.hits if l1 else 0
        l1_misses = l1.misses if l1 else 0
        self._history.append((now, l1_hits, l1_misses))
        while len(self._history) > 1 and now - self._history[0][0] > self._window_s:
            self._history.popleft()
        _, h0, m0 = self._history[0]
        window_lookups = (l1_hits - h0) + (l1_misses - m0)
        layers: dict[str, Any] = {
            "l1": {
                "hits": l1_hits,
                "misses": l1_misses,
                "stale_hits": self.l1_stale,
                "negative_hits": self.l1_negative,
                "hit_ratio": _ratio(l1_hits, l1_misses),
                "window_s": self._window_s,
                "window_hit_ratio": (l1_hits - h0) / window_lookups if window_lookups else None,
                "entries": len(l1) if l1 else 0,
                "bytes": l1.bytes if l1 else 0,
                "evictions": {r.value: n for r, n in l1.evictions.items()} if l1 else {},
            }
        }
        for layer in (Layer.L2, Layer.LOADER):
            data: dict[str, int | float | None] = {o.value: self.counts[layer, o] for o in Outcome}
            c = self.counts
            hits = c[layer, Outcome.HIT] + c[layer, Outcome.STALE] + c[layer, Outcome.NEGATIVE]
            data["hit_ratio"] = _ratio(hits, c[layer, Outcome.MISS] + c[layer, Outcome.ERROR])
            layers[layer.value] = data
        if self.breaker is not None:
            layers["l2"]["breaker"] = self.breaker.snapshot()
        return {"cache": self.name, "layers": layers, "hot_keys": self.hot.snapshot(hot_keys)}


def _ratio(hits: int, misses: int) -> float | None:
    total = hits + misses
    return hits / total if total else None


class _StatsCollector(Collector):
    def __init__(self, stats: CacheStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        s = self.stats
        name = s.name
        lookups = CounterMetricFamily(
            "haetae_cache_requests",
            "Cache lookups per layer and outcome",
            labels=["cache", "layer", "outcome"],
        )
        if s.l1 is not None:
            lookups.add_metric([name, "l1", "hit"], s.l1.hits)
            lookups.add_metric([name, "l1", "miss"], s.l1.misses)
        for (layer, outcome), n in s.counts.items():
            lookups.add_metric([name, layer.value, outcome.value], n)
        yield lookups
        if s.l1 is not None:
            evictions = CounterMetricFamily(
                "haetae_cache_evictions",
                "Entries removed from the L1, by reason",
                labels=["cache", "layer", "reason"],
            )
            for reason, n in s.l1.evictions.items():
                evictions.add_metric([name, "l1", reason.value], n)
            yield evictions
            size = GaugeMetricFamily(
                "haetae_cache_bytes", "Bytes held by the L1 (estimated)", labels=["cache", "layer"]
            )
            size.add_metric([name, "l1"], s.l1.bytes)
            yield size
            entries = GaugeMetricFamily(
                "haetae_cache_entries", "Entries held by the L1", labels=["cache", "layer"]
            )
            entries.add_metric([name, "l1"], len(s.l1))
            yield entries
        if s.breaker is not None:
            state = GaugeMetricFamily(
                "haetae_cache_breaker_open",
                "1 while the L2 circuit breaker is not closed",
                labels=["cache"],
            )
            state.add_metric([name], 0 if s.breaker.state.value == "closed" else 1)
            yield state
        yield from s.latency.collect()
