"""The control plane's config tree (YAML file + ``HAETAE_*`` environment overrides)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, SecretStr

from haetae.config import StrictModel, load_file

ENV_PREFIX = "HAETAE"


class HttpConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8340, ge=0, le=65535)
    # Largest accepted request body, compressed or not (reports are the big ones).
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # Largest body after gzip decompression: guards against decompression bombs.
    max_decompressed_bytes: int = Field(64 * 1024 * 1024, ge=1024)


class PostgresConfig(StrictModel):
    dsn: SecretStr | None = None
    pool_min_size: int = Field(2, ge=1)
    pool_max_size: int = Field(10, ge=1)
    command_timeout_s: float = Field(30.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    # Apply pending migrations when the control plane starts (also: `haetae db migrate`).
    migrate_on_start: bool = True


class RedisConfig(StrictModel):
    url: SecretStr | None = None
    socket_timeout_s: float = Field(1.0, gt=0)


class AuthConfig(StrictModel):
    # A pre-shared enrolment token accepted in addition to the ones created via the API
    # (handy for fleets provisioned by config management). Stored hashed on first start.
    enrolment_token: SecretStr | None = None
    # On first start (no admin token exists yet) one is created and written here, mode 600.
    bootstrap_token_file: Path = Path(".haetae/admin.token")


class IngestConfig(StrictModel):
    # In-memory window kept per series for the rule evaluator.
    window_seconds: float = Field(3600.0, gt=0)
    window_max_points: int = Field(4096, ge=2)
    # Group commit: one COPY transaction per flush.
    flush_interval_s: float = Field(0.05, gt=0)
    flush_max_samples: int = Field(25_000, ge=1)
    # Samples this far ahead of the server clock are refused (agent clock gone wrong).
    max_future_skew_s: float = Field(600.0, gt=0)
    max_samples_per_report: int = Field(200_000, ge=1)


class RetentionConfig(StrictModel):
    retention_days: int = Field(14, ge=1)
    partitions_ahead_days: int = Field(3, ge=1)
    maintenance_interval_s: float = Field(3600.0, gt=0)


class HealthConfig(StrictModel):
    # Dependency checks run in the background; the endpoints answer from the latest result.
    check_interval_s: float = Field(2.0, gt=0)
    check_timeout_s: float = Field(1.0, gt=0)
    # A check older than this is reported as "warn" (stale).
    stale_after_s: float = Field(10.0, gt=0)


class AgentsConfig(StrictModel):
    # An agent not heard from for this long is "stale"; after down_after_s it is "down".
    stale_after_s: float = Field(30.0, gt=0)
    down_after_s: float = Field(120.0, gt=0)


class LoggingConfig(StrictModel):
    level: str = "INFO"
    json_format: bool = True


class ControlPlaneConfig(StrictModel):
    http: HttpConfig = HttpConfig()
    postgres: PostgresConfig = PostgresConfig()
    redis: RedisConfig = RedisConfig()
    auth: AuthConfig = AuthConfig()
    ingest: IngestConfig = IngestConfig()
    retention: RetentionConfig = RetentionConfig()
    health: HealthConfig = HealthConfig()
    agents: AgentsConfig = AgentsConfig()
    logging: LoggingConfig = LoggingConfig()


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> ControlPlaneConfig:
    """Load the control-plane config from ``path`` (optional) and the environment."""
    if path is not None:
        path = Path(path)
    return load_file(
        ControlPlaneConfig, path, env=os.environ if env is None else env, env_prefix=ENV_PREFIX
    )
