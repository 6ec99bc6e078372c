"""Embedded servers in directories outside pytest's basetemp.

Under root the PostgreSQL service user needs search permission on the data directory's
ancestors; every pytest session resets its ``pytest-of-<user>`` directory to 0700, so a server
(re)starting under ``tmp_path`` can fail while another session starts (docs/operations.md).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="haetae-up-") as d:
        yield Path(d)
