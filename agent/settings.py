"""The agent's run-time settings: plain frozen dataclasses mirroring ``agent.config.AgentConfig``.

The pydantic tree in ``agent.config`` validates a config (file, environment, defaults); the
running agent only reads it. Keeping pydantic, PyYAML and the loader out of the agent process
saves ~8-12 MiB of RSS, so ``haetae agent`` validates with ``AgentConfig`` and hands the
validated tree to the lean run-time entry (``agent.__main__``) as JSON. ``from_config`` converts
an ``AgentConfig`` (or anything of the same shape) field by field; nothing here re-validates.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson


class _HasSecret(Protocol):
    def get_secret_value(self) -> str: ...


class Secret:
    """A string that does not show itself in repr or logs (like pydantic's ``SecretStr``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class ControlPlaneLink:
    url: str
    enrolment_token: Secret | None
    request_timeout_s: float


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ProcessTarget:
    pid: int | None
    pid_file: Path | None
    cmdline_match: str | None


@dataclass(frozen=True, slots=True)
class AppScrape:
    metrics_url: str | None
    timeout_s: float
    max_bytes: int


@dataclass(frozen=True, slots=True)
class HealthProbe:
    url: str | None
    timeout_s: float


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    max_bytes: int
    segment_bytes: int


@dataclass(frozen=True, slots=True)
class AgentCacheConfig:
    enabled: bool
    redis_url: Secret | None
    unix_socket: Path | None
    port: int | None
    max_entries: int
    max_bytes: int
    ttl_s: float
    l2_timeout_ms: float


@dataclass(frozen=True, slots=True)
class PushConfig:
    enabled: bool
    token: Secret | None
    max_bytes: int
    max_samples: int
    min_interval_s: float


@dataclass(frozen=True, slots=True)
class AgentSettings:
    agent_id: str
    labels: dict[str, str]
    interval_s: float
    state_dir: Path
    collectors: list[str]
    control_plane: ControlPlaneLink
    http: HttpConfig
    process: ProcessTarget
    app: AppScrape
    health: HealthProbe
    spool: SpoolConfig
    cache: AgentCacheConfig
    push: PushConfig


def from_config(config: Any) -> AgentSettings:
    """The settings of a validated ``AgentConfig`` (an ``AgentSettings`` is returned as is)."""
    if isinstance(config, AgentSettings):
        return config
    return _convert(AgentSettings, lambda name: getattr(config, name))


def to_json(settings: AgentSettings) -> bytes:
    """JSON for the hand-over to the run-time process; secrets are in clear text, so this must
    only travel through a private channel (an inherited file descriptor), never argv or logs."""

    def default(value: Any) -> Any:
        if isinstance(value, Secret):
            return value.get_secret_value()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(type(value).__name__)

    return orjson.dumps(dataclasses.asdict(settings), default=default)


def from_json(data: bytes | str) -> AgentSettings:
    doc = orjson.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("agent settings must be a JSON object")
    return _convert(AgentSettings, doc.__getitem__)


_HINTS: dict[type, dict[str, Any]] = {}


def _convert(cls: type[Any], get: typing.Callable[[str], Any]) -> Any:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        values[f.name] = _value(hints[f.name], get(f.name))
    return cls(**values)


def _value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            return _convert(hint, value.__getitem__)  # type: ignore[arg-type]
        return _convert(hint, lambda name: getattr(value, name))  # type: ignore[arg-type]
    if hint is Secret:
        secret: _HasSecret | str = value
        return Secret(secret if isinstance(secret, str) else secret.get_secret_value())
    if hint is Path:
        return Path(value)
    origin = typing.get_origin(hint)
    if origin is list:
        return list(value)
    if origin is dict:
        return dict(value)
    if hint is float:
        return float(value)
    return value
