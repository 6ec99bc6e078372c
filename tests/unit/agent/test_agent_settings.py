"""The run-time settings mirror the validated config exactly, survive the JSON hand-over, and
keep pydantic and PyYAML out of the running agent."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

from pydantic import BaseModel

from agent import settings as rt
from agent.config import AgentConfig


def _mirror_pairs() -> list[tuple[type[BaseModel], type]]:
    pairs: list[tuple[type[BaseModel], type]] = [(AgentConfig, rt.AgentSettings)]
    hints = typing.get_type_hints(rt.AgentSettings)
    for name, info in AgentConfig.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            pairs.append((sub, hints[name]))
    return pairs


def test_every_config_field_has_its_mirror() -> None:
    pairs = _mirror_pairs()
    assert len(pairs) == 9
    for model, mirror in pairs:
        assert dataclasses.is_dataclass(mirror), mirror
        assert [f.name for f in dataclasses.fields(mirror)] == list(model.model_fields), model


def test_round_trip_keeps_every_value(tmp_path: Path) -> None:
    config = AgentConfig(
        agent_id="web-1",
        labels={"env": "prod"},
        interval_s=2,
        state_dir=tmp_path,
        collectors=["health", "host"],
        control_plane={"url": "http://cp:8340", "enrolment_token": "s3cret"},
        http={"port": 0},
        process={"pid_file": tmp_path / "app.pid"},
        app={"metrics_url": "http://app/metrics", "max_bytes": 2048},
        health={"url": "http://app/health", "timeout_s": 0.5},
        spool={"max_bytes": 1 << 20},
        cache={
            "enabled": True,
            "redis_url": "redis://:pw@127.0.0.1:6379/0",
            "unix_socket": tmp_path / "l1.sock",
            "port": 0,
            "max_entries": 10,
            "ttl_s": 5,
        },
        push={"token": "push-s3cret", "min_interval_s": 0.25},
    )
    settings = rt.from_config(config)
    assert rt.from_config(settings) is settings
    back = rt.from_json(rt.to_json(settings))
    assert back == settings
    assert back.interval_s == 2.0 and isinstance(back.interval_s, float)
    assert back.state_dir == tmp_path and back.process.pid_file == tmp_path / "app.pid"
    token = back.control_plane.enrolment_token
    assert token is not None and token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(back)
    assert back.cache.port == 0 and back.cache.unix_socket == tmp_path / "l1.sock"
    assert back.cache.ttl_s == 5.0 and isinstance(back.cache.ttl_s, float)
    url = back.cache.redis_url
    assert url is not None and url.get_secret_value() == "redis://:pw@127.0.0.1:6379/0"
    assert "pw@" not in repr(back)
    push = back.push.token
    assert push is not None and push.get_secret_value() == "push-s3cret"
    assert back.push.min_interval_s == 0.25 and "push-s3cret" not in repr(back)
    for model, _ in _mirror_pairs()[1:]:
        name = next(n for n, i in AgentConfig.model_fields.items() if i.annotation is model)
        assert dataclasses.asdict(getattr(back, name)).keys() == model.model_fields.keys()


def test_defaults_survive_too() -> None:
    settings = rt.from_json(rt.to_json(rt.from_config(AgentConfig())))
    assert settings.control_plane.enrolment_token is None
    assert settings.process.pid is None and settings.app.metrics_url is None
    assert settings.collectors == ["host", "process", "app", "health"]
    assert settings.cache.enabled is False and settings.cache.redis_url is None


def test_run_time_imports_leave_out_pydantic_and_yaml() -> None:
    code = (
        "import sys, agent.__main__, agent.service, agent.settings, haetae.logs\n"
        "heavy = sorted(m for m in ('pydantic', 'yaml', 'aiohttp', 'haetae.config')"
        " if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cache_enabled_path_leaves_out_aiohttp() -> None:
    # What an agent with ``cache.enabled`` loads on top (agent.service imports it lazily).
    code = (
        "import sys, agent.__main__, agent.service, agent.settings, haetae.logs\n"
        "assert 'redis' not in sys.modules and 'haetae.cache' not in sys.modules\n"
        "import agent.cache_host\n"
        "assert 'aiohttp' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cache_enabled_path_leaves_out_pydantic() -> None:
    code = (
        "import sys, agent.cache_host\n"
        "heavy = sorted(m for m in ('pydantic', 'yaml', 'haetae.config') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
