"""The ``link_analyzer`` section of the control-plane config (also read by ``haetae worker``)."""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr, field_validator

from haetae.config import StrictModel
from link_analyzer.platforms import Platform

_DEFAULT_TTLS = {
    # Posts change rarely once published; counters do, and we do not serve counters.
    Platform.YOUTUBE.value: 6 * 3600.0,
    Platform.INSTAGRAM.value: 3600.0,
    Platform.TIKTOK.value: 3600.0,
    Platform.NAVER_BLOG.value: 12 * 3600.0,
    Platform.X.value: 1800.0,
    Platform.WEB.value: 3600.0,
}


class FetchConfig(StrictModel):
    total_timeout_s: float = Field(10.0, gt=0)
    connect_timeout_s: float = Field(3.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    html_max_bytes: int = Field(512 * 1024, ge=4096)
    media_max_bytes: int = Field(8 * 1024 * 1024, ge=4096)
    max_redirects: int = Field(5, ge=0, le=5)
    per_host_concurrency: int = Field(4, ge=1)
    # Request starts per second to one host; platforms throttle or block bursts.
    per_host_rate_per_s: float | None = Field(10.0, gt=0)
    max_connections: int = Field(200, ge=1)
    # Images of one item sent to the model with its text (one call per item).
    max_media_items: int = Field(4, ge=0, le=16)
    # Images whose decoded size (width x height, read from the header) is over this, or whose
    # header cannot be read, are not sent to the model.
    max_image_pixels: int = Field(25_000_000, ge=1)
    # Networks exempt from the SSRF guard. Leave empty in production; a local demo origin
    # may need ["127.0.0.0/8"].
    allow_networks: list[str] = Field(default_factory=list)

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            ipaddress.ip_network(net)
        return value


class CacheConfig(StrictModel):
    # Metadata TTL per platform (seconds); the same URL within its TTL comes from cache.
    ttl_s: dict[str, float] = Field(default_factory=lambda: dict(_DEFAULT_TTLS))
    # AI analyses are keyed by content hash: unchanged content is never analysed twice.
    analysis_ttl_s: float = Field(7 * 86400.0, gt=0)
    short_link_ttl_s: float = Field(86400.0, gt=0)
    # On haetae.cache: an in-process L1 (bounded) in front of the Redis L2.
    l1_max_entries: int = Field(20_000, ge=1)
    l1_max_bytes: int = Field(64 * 1024 * 1024, ge=4096)
    # Each L2 call is cut off after this (a slow Redis degrades to misses, never to errors).
    l2_timeout_ms: float = Field(500.0, gt=0)
    # DELETE /api/v1/cache/{url_hash} waits this long for every process's L1 to drop the entry.
    invalidate_timeout_s: float = Field(2.0, gt=0, le=60)

    @field_validator("ttl_s")
    @classmethod
    def _platforms(cls, value: dict[str, float]) -> dict[str, float]:
        known = {p.value for p in Platform}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown platforms {unknown}; known: {sorted(known)}")
        if any(v <= 0 for v in value.values()):
            raise ValueError("TTLs must be positive")
        return {**_DEFAULT_TTLS, **value}

    def ttl_for(self, platform: Platform) -> float:
        return self.ttl_s.get(platform.value, _DEFAULT_TTLS[Platform.WEB.value])


class QueueConfig(StrictModel):
    lease_s: float = Field(10.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=20)
    job_timeout_s: float = Field(60.0, gt=0)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    result_ttl_s: float = Field(86400.0, gt=0)
    worker_concurrency: int = Field(32, ge=1)
    # ``haetae worker`` serves its own /metrics and /health here (loopback only); None: off,
    # 0: any free port.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int | None = Field(8344, ge=0, le=65535)

    @field_validator("worker_metrics_host")
    @classmethod
    def _loopback(cls, value: str) -> str:
        if value == "localhost":
            return value
        try:
            loopback = ipaddress.ip_address(value).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError("the worker's metrics listen on a loopback address only")
        return value


class GeminiConfig(StrictModel):
    # Falls back to the GEMINI_API_KEY environment variable; without a key the AI stage is off.
    api_key: SecretStr | None = None
    model: str = "gemini-2.5-flash"
    api_version: str = "v1beta"
    base_url: str | None = None
    timeout_s: float = Field(30.0, gt=0)
    # USD per million tokens, for the cost ledger.
    input_per_mtok: float = Field(0.30, ge=0)
    output_per_mtok: float = Field(2.50, ge=0)
    # Low-priority queued jobs go through the Batch API: at most batch_max_items requests per
    # batch, submitted batch_max_wait_s after its first item, polled every batch_poll_s.
    batch_input_per_mtok: float = Field(0.15, ge=0)
    batch_output_per_mtok: float = Field(1.25, ge=0)
    batch_enabled: bool = True
    batch_max_items: int = Field(100, ge=1)
    batch_max_wait_s: float = Field(2.0, ge=0)
    batch_poll_s: float = Field(10.0, gt=0)
    # A batch not done this long after submission fails its jobs (retryably). A job waiting on
    # a batch keeps its queue lease by heartbeats and its queue.job_timeout_s does not run
    # while it waits: this deadline bounds the wait instead.
    batch_deadline_s: float = Field(3600.0, gt=0, le=86400)


class LinkAnalyzerConfig(StrictModel):
    enabled: bool = True
    # POST /api/v1/analyze answers within this; past it the work continues as a queued job.
    sync_deadline_s: float = Field(8.0, gt=0)
    min_text_chars: int = Field(40, ge=0)
    fetch: FetchConfig = FetchConfig()
    cache: CacheConfig = CacheConfig()
    queue: QueueConfig = QueueConfig()
    gemini: GeminiConfig = GeminiConfig()
