"""Fixtures for remote write out (helpers in forward_support.py)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from forward_support import FakeStore, Forwarding
from victoria_support import VM_BINARY, VictoriaMetrics


@pytest.fixture
async def forwarding(pool: asyncpg.Pool) -> AsyncIterator[Forwarding]:
    await pool.executemany(
        "INSERT INTO agents (agent_id) VALUES ($1)", [(a,) for a in ("web-1", "web-2")]
    )
    f = Forwarding(pool)
    async with f.ingestor:
        try:
            yield f
        finally:
            await f.stop_forwarders()


@pytest.fixture
async def victoria_metrics(tmp_path: Path) -> AsyncIterator[VictoriaMetrics]:
    if shutil.which(VM_BINARY) is None:
        pytest.skip(f"{VM_BINARY} is missing (Debian package victoria-metrics)")
    vm = VictoriaMetrics(tmp_path / "vm")
    await vm.start()
    try:
        yield vm
    finally:
        await vm.stop()


@pytest.fixture
async def fake_store() -> AsyncIterator[FakeStore]:
    store = FakeStore()
    await store.start()
    try:
        yield store
    finally:
        await store.stop()
