"""Backoff, durable state files, the collector registry and the package's public face."""

from __future__ import annotations

from pathlib import Path

import pytest

import agent
from agent.backoff import Backoff
from agent.collectors import COLLECTORS, build_collectors
from agent.collectors.host import HostCollector
from agent.config import AgentConfig
from agent.http.client import HttpClient
from agent.state import SeqAllocator, TokenStore
from haetae.config import ConfigError


def test_backoff_doubles_to_cap_with_jitter_in_upper_half() -> None:
    low = Backoff(base_s=1.0, cap_s=8.0, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    high = Backoff(base_s=1.0, cap_s=8.0, rng=lambda: 0.999999)
    assert [round(high.next_delay(), 3) for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    high.reset()
    assert round(high.next_delay(), 3) == 1.0


def test_token_store_is_private_and_atomic(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "agent.token", "web-1")
    assert store.load() is None
    store.save("hta_abc")
    assert store.load() == "hta_abc"
    assert (tmp_path / "agent.token").stat().st_mode & 0o777 == 0o600
    # A token issued to another agent id is not this agent's token.
    assert TokenStore(tmp_path / "agent.token", "web-2").load() is None
    store.clear()
    assert store.load() is None


def test_seq_is_contiguous_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "report.seq"
    first = SeqAllocator(path)
    assert [first.next() for _ in range(3)] == [1, 2, 3]
    first.close()  # or a crash: the number is already in the file (page cache)
    second = SeqAllocator(path)
    assert [second.next() for _ in range(2)] == [4, 5]
    second.close()
    # After a machine crash the file may lag behind the spool; the spool's number wins.
    third = SeqAllocator(path, at_least=9)
    assert third.next() == 10
    third.close()
    path.write_bytes(b"garbage")
    assert SeqAllocator(path, at_least=10).next() == 11


async def test_registry_builds_configured_collectors_only(tmp_path: Path) -> None:
    assert set(COLLECTORS) == {"host", "process", "app", "health"}
    async with HttpClient() as session:
        built = build_collectors(AgentConfig(state_dir=tmp_path), session)
        # No process, app or health target configured: those are not built.
        assert [type(c) for c in built] == [HostCollector]
        cfg = AgentConfig(
            state_dir=tmp_path,
            collectors=["health", "app"],
            app={"metrics_url": "http://127.0.0.1:1/metrics"},
            health={"url": "http://127.0.0.1:1/health"},
        )
        assert [c.name for c in build_collectors(cfg, session)] == ["health", "app"]
        with pytest.raises(ConfigError) as err:
            build_collectors(AgentConfig(state_dir=tmp_path), session, registry={})
        assert err.value.key == "collectors.0"


def test_config_rejects_unknown_collector() -> None:
    with pytest.raises(ValueError, match="unknown collector 'gpu'"):
        AgentConfig(collectors=["host", "gpu"])


def test_public_face() -> None:
    assert sorted(agent.__all__) == [
        "Agent",
        "AgentConfig",
        "load_config",
        "main_async",
        "run_agent",
    ]
    for name in agent.__all__:
        assert getattr(agent, name).__module__.startswith("agent.")
