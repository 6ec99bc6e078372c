"""The process collector's held /proc files: same figures as psutil, and never another process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.collectors.base import Sample
from agent.collectors.process import ProcessCollector

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

STABLE = {
    "haetae_process_up",
    "haetae_process_virtual_memory_bytes",
    "haetae_process_threads",
    "haetae_process_start_time_seconds",
    "haetae_process_restarts_total",
    "haetae_process_open_fds",
}


def _values(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}


def test_fast_path_matches_psutil_even_with_odd_command_names(tmp_path: Path) -> None:
    # A command name with ") " in it: the stat fields are split after the last parenthesis.
    odd = tmp_path / "we) ird (x"
    os.symlink(shutil.which("sleep") or "/bin/sleep", odd)
    child = subprocess.Popen([str(odd), "30"])
    try:
        time.sleep(0.1)
        collector = ProcessCollector(pid=child.pid)
        slow = collector.collect_blocking()  # resolves with psutil
        fast = collector.collect_quick()
        assert fast is not None and collector._files is not None
        a, b = _values(slow), _values(fast)
        assert a.keys() == b.keys()
        for key, value in a.items():
            if key[0] in STABLE:
                assert b[key] == value, key
            else:
                assert b[key] >= value, key  # counters, and an RSS that can only have grown
    finally:
        child.kill()
        child.wait()


def test_exited_process_is_not_read_through_the_held_files() -> None:
    child = subprocess.Popen(["sleep", "30"])
    collector = ProcessCollector(pid=child.pid)
    collector.collect_blocking()
    assert collector.collect_quick() is not None
    child.kill()
    time.sleep(0.2)
    # A zombie (exited, not yet reaped): down, found again (or not) next cycle.
    zombie = collector.collect_quick()
    assert zombie is not None
    assert {s.name: s.value for s in zombie}["haetae_process_up"] == 0.0
    child.wait()  # reaped: nothing to find any more
    up = {s.name: s.value for s in collector.collect_blocking()}
    assert up["haetae_process_up"] == 0.0


def test_reaped_process_sends_the_quick_path_to_the_thread() -> None:
    child = subprocess.Popen(["sleep", "30"])
    collector = ProcessCollector(pid=child.pid)
    collector.collect_blocking()
    assert collector.collect_quick() is not None
    files = collector._files
    assert files is not None
    child.kill()
    child.wait()
    assert files.read() is None  # ESRCH through the held descriptor
    assert collector.collect_quick() is None
    assert collector._files is None
