"""The agent's config tree (YAML file + ``HAETAE_AGENT_*`` environment overrides)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from haetae.config import StrictModel, load_file

ENV_PREFIX = "HAETAE_AGENT"


class ControlPlaneLink(StrictModel):
    url: str = "http://127.0.0.1:8340"
    # Used once, to enrol; the agent then stores its own token under state_dir.
    enrolment_token: SecretStr | None = None
    request_timeout_s: float = Field(10.0, gt=0)


class HttpConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8341, ge=0, le=65535)


class ProcessTarget(StrictModel):
    """How to find the watched app process: the first of pid, pid_file, cmdline_match set."""

    pid: int | None = Field(None, ge=1)
    pid_file: Path | None = None
    # Substring matched against the joined command line of running processes.
    cmdline_match: str | None = None


class AppScrape(StrictModel):
    # The app's Prometheus endpoint.
    metrics_url: str | None = None
    timeout_s: float = Field(2.0, gt=0)
    max_bytes: int = Field(4 * 1024 * 1024, ge=1024)


class HealthProbe(StrictModel):
    url: str | None = None
    timeout_s: float = Field(2.0, gt=0)


class SpoolConfig(StrictModel):
    # Total bytes kept on disk; past it the oldest reports are dropped (and counted).
    max_bytes: int = Field(256 * 1024 * 1024, ge=64 * 1024)
    segment_bytes: int = Field(4 * 1024 * 1024, ge=4096)


class AgentCacheConfig(StrictModel):
    """The agent-hosted L1, served over the Redis protocol to the app on this host."""

    enabled: bool = False
    # The shared L2 and invalidation stream. Unset: an L1 of this host only.
    redis_url: SecretStr | None = None
    # Unset: ``<state_dir>/l1.sock``.
    unix_socket: Path | None = None
    # Also serve on this loopback TCP port (0: any free port); unset: unix socket only.
    port: int | None = Field(None, ge=0, le=65535)
    max_entries: int = Field(100_000, ge=1)
    max_bytes: int = Field(64 * 1024 * 1024, ge=4096)
    # For SETs without EX/PX, and for values read through from the L2.
    ttl_s: float = Field(300.0, gt=0)
    # Each L2 call is cut off after this; slow or failing calls open the circuit breaker.
    l2_timeout_ms: float = Field(50.0, gt=0)


class PushConfig(StrictModel):
    """``POST /v1/push`` on the agent's HTTP server: the app pushes samples that are reported
    at once (an urgent report) instead of waiting for the next collection."""

    enabled: bool = True
    # Unset: like /metrics and /health, open to whoever reaches http.host (loopback by default).
    token: SecretStr | None = None
    max_bytes: int = Field(1024 * 1024, ge=1024)
    # Pushed samples waiting for a report; past it a push is answered 429.
    max_samples: int = Field(10_000, ge=1)
    # Urgent reports are at least this far apart; pushes meanwhile share the next one.
    min_interval_s: float = Field(0.1, ge=0.0, le=60.0)


KNOWN_COLLECTORS = ("host", "process", "app", "health")


class AgentConfig(StrictModel):
    agent_id: str = Field(default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9._-]{1,128}$")
    labels: dict[str, str] = {}
    interval_s: float = Field(10.0, ge=1.0, le=3600.0)
    state_dir: Path = Path(".haetae/agent")
    collectors: list[str] = list(KNOWN_COLLECTORS)
    control_plane: ControlPlaneLink = ControlPlaneLink()
    http: HttpConfig = HttpConfig()
    process: ProcessTarget = ProcessTarget()
    app: AppScrape = AppScrape()
    health: HealthProbe = HealthProbe()
    spool: SpoolConfig = SpoolConfig()
    cache: AgentCacheConfig = AgentCacheConfig()
    push: PushConfig = PushConfig()

    @model_validator(mode="after")
    def _known_collectors(self) -> AgentConfig:
        unknown = [c for c in self.collectors if c not in KNOWN_COLLECTORS]
        if unknown:
            known = ", ".join(KNOWN_COLLECTORS)
            raise ValueError(f"collectors: unknown collector {unknown[0]!r} (known: {known})")
        return self


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> AgentConfig:
    if path is not None:
        path = Path(path)
    return load_file(
        AgentConfig, path, env=os.environ if env is None else env, env_prefix=ENV_PREFIX
    )
