"""The multi-layer cache: in-process W-TinyLFU L1, Redis (Cluster) L2, CDN L3 purges, durable
invalidation."""

from typing import TYPE_CHECKING, Any

from haetae.cache.invalidation import (
    Invalidation,
    InvalidationBus,
    InvalidationError,
    WaitResult,
)
from haetae.cache.l1 import Entry, EvictionReason, L1Cache
from haetae.cache.l2 import AutoPipeline, RedisL2, client_from_url
from haetae.cache.l3 import (
    CdnPurger,
    CloudflarePurger,
    NginxPurger,
    PurgeError,
    PurgeRejected,
    PurgeRequest,
    PurgeResult,
    PurgeRetryable,
)
from haetae.cache.layered import CachePolicy, LayeredCache, Loaded, Loader
from haetae.cache.sketch import FrequencySketch
from haetae.cache.stats import CacheStats, Layer, Outcome
from haetae.cache.warmup import StoredNamespace, Warmer, WarmupJob

if TYPE_CHECKING:
    from haetae.cache.config import CacheConfig


def __getattr__(name: str) -> Any:
    # CacheConfig is pydantic: loaded on first use only, so the agent's lean runtime, which
    # embeds the cache but never validates config itself, stays free of pydantic (PEP 562).
    if name == "CacheConfig":
        from haetae.cache.config import CacheConfig

        return CacheConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AutoPipeline",
    "CacheConfig",
    "CachePolicy",
    "CacheStats",
    "CdnPurger",
    "CloudflarePurger",
    "Entry",
    "EvictionReason",
    "FrequencySketch",
    "Invalidation",
    "InvalidationBus",
    "InvalidationError",
    "L1Cache",
    "Layer",
    "LayeredCache",
    "Loaded",
    "Loader",
    "NginxPurger",
    "Outcome",
    "PurgeError",
    "PurgeRejected",
    "PurgeRequest",
    "PurgeResult",
    "PurgeRetryable",
    "RedisL2",
    "StoredNamespace",
    "WaitResult",
    "Warmer",
    "WarmupJob",
    "client_from_url",
]
