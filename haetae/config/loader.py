"""Load a config tree from YAML text, a file, and ``PREFIX_*`` environment variables.

``load`` is pure (text in, model out); unknown keys are rejected and every error names its key.
Environment overrides map ``HAETAE_POSTGRES_DSN`` to ``postgres.dsn`` by walking the model's
fields, so field names may themselves contain underscores (``HAETAE_INGEST_RETENTION_DAYS``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from haetae.config.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def load(
    model: type[M],
    text: str = "",
    *,
    source: str = "<string>",
    env: Mapping[str, str] | None = None,
    env_prefix: str | None = None,
) -> M:
    """Parse YAML ``text`` into ``model``; apply ``env`` overrides under ``env_prefix``."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", source=source) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping", source=source)
    env_sources: dict[str, str] = {}
    if env is not None and env_prefix:
        data, env_sources = apply_env_overrides(model, data, env, env_prefix)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        origin = env_sources.get(key, source)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise ConfigError(msg, key=key, source=origin) from exc


def load_file(
    model: type[M],
    path: str | os.PathLike[str] | None,
    *,
    env: Mapping[str, str] | None = None,
    env_prefix: str | None = None,
) -> M:
    """Load ``path`` (or only defaults and env when ``path`` is None)."""
    if path is None:
        return load(model, "", source="<defaults>", env=env, env_prefix=env_prefix)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", source=str(p)) from exc
    return load(model, text, source=str(p), env=env, env_prefix=env_prefix)


def apply_env_overrides(
    model: type[BaseModel],
    data: dict[str, Any],
    env: Mapping[str, str],
    prefix: str,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return ``data`` with ``PREFIX_*`` variables merged in, and key -> variable name.

    Variables that match no field are ignored: the environment is shared with other programs.
    Values are parsed as YAML scalars (``"10"`` -> 10, ``"true"`` -> True, ``"[a, b]"`` -> list).
    """
    merged = _deep_copy(data)
    sources: dict[str, str] = {}
    head = prefix.upper().rstrip("_") + "_"
    for name, raw in sorted(env.items()):
        if not name.startswith(head):
            continue
        path = _resolve(model, name[len(head) :].lower())
        if path is None:
            continue
        node = merged
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = _parse_scalar(raw)
        sources[".".join(path)] = f"${name}"
    return merged, sources


def _resolve(model: type[BaseModel], rest: str) -> list[str] | None:
    """Find the field path for ``rest`` (``postgres_pool_max`` -> [postgres, pool_max])."""
    fields = model.model_fields
    if rest in fields:
        return [rest]
    for field_name, info in sorted(fields.items(), key=lambda kv: -len(kv[0])):
        sub = info.annotation
        if (
            rest.startswith(field_name + "_")
            and isinstance(sub, type)
            and issubclass(sub, BaseModel)
        ):
            tail = _resolve(sub, rest[len(field_name) + 1 :])
            if tail is not None:
                return [field_name, *tail]
    return None


def _parse_scalar(raw: str) -> Any:
    if raw == "":
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def redacted(config: BaseModel) -> dict[str, Any]:
    """A JSON-friendly dump with every secret shown as ``**********``."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "**********" if value.get_secret_value() else ""
        if isinstance(value, BaseModel):
            return {k: walk(getattr(value, k)) for k in type(value).model_fields}
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    result = walk(config)
    assert isinstance(result, dict)
    return result
