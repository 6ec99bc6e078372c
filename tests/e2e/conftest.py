"""Fixtures for the end-to-end tests: a stack of real processes, stopped after each test."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_stack import Stack


@pytest.fixture
def stack(tmp_path: Path, db_dsn: str, redis_url: str) -> Iterator[Stack]:
    s = Stack(tmp_path, db_dsn, redis_url)
    yield s
    for p in reversed(s.procs):
        p.kill(signal.SIGTERM)
