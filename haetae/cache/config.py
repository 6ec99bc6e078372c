"""The cache's config section (used by the control plane and the agent alike)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from haetae.config import StrictModel


class CacheConfig(StrictModel):
    enabled: bool = True
    # The L2. Unset: the service's own Redis. ``redis+cluster://host:port`` for a Redis Cluster.
    url: SecretStr | None = None
    l1_max_entries: int = Field(100_000, ge=1)
    l1_max_bytes: int = Field(256 * 1024 * 1024, ge=4096)
    ttl_s: float = Field(300.0, gt=0)
    stale_ttl_s: float = Field(60.0, ge=0)
    negative_ttl_s: float = Field(10.0, ge=0)
    # Each L2 call is cut off after this; slow or failing calls open the circuit breaker.
    l2_timeout_ms: float = Field(50.0, gt=0)
    breaker_wait_s: float = Field(2.0, gt=0)
    # Invalidation log retention (entries); an L1 further behind than this flushes itself.
    stream_maxlen: int = Field(100_000, ge=10)
    invalidate_timeout_s: float = Field(2.0, gt=0, le=60)
    # Named warm-up sets: name -> keys (each key's namespace needs a registered loader).
    warmup_sets: dict[str, list[str]] = {}
    warmup_concurrency: int = Field(32, ge=1, le=1024)
    stats_window_s: float = Field(60.0, gt=0)
