"""The host and process collectors against this machine and real child processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent.collectors.base import Sample
from agent.collectors.host import HostCollector
from agent.collectors.process import ProcessCollector


def _one(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels.items() >= labels.items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def test_host_collector_returns_sane_values() -> None:
    host = HostCollector()
    first = await host.collect()
    second = await host.collect()  # ratios over the last cycle from here on
    for samples in (first, second):
        usage = _one(samples, "haetae_host_cpu_usage_ratio", cpu="total")
        assert 0.0 <= usage <= 1.0
        modes = [s for s in samples if s.name == "haetae_host_cpu_mode_ratio"]
        assert {s.labels["mode"] for s in modes} >= {"user", "system", "idle"}
        assert sum(s.value for s in modes) == pytest.approx(1.0, abs=1e-6)
    s = second
    assert _one(s, "haetae_host_cpu_count") == psutil.cpu_count()
    assert _one(s, "haetae_host_cpu_seconds_total", mode="user") > 0
    assert _one(s, "haetae_host_load1") >= 0
    total = _one(s, "haetae_host_memory_total_bytes")
    assert total == psutil.virtual_memory().total
    assert 0 < _one(s, "haetae_host_memory_available_bytes") <= total
    assert 0 < _one(s, "haetae_host_memory_used_ratio") < 1
    assert _one(s, "haetae_host_swap_total_bytes") >= 0
    root = [x for x in s if x.name == "haetae_host_filesystem_size_bytes"]
    assert root and all(x.value > 0 and x.labels["mountpoint"] for x in root)
    assert all(0 <= x.value <= 1 for x in s if x.name == "haetae_host_filesystem_used_ratio")
    nics = {x.labels["device"] for x in s if x.name == "haetae_host_network_receive_bytes_total"}
    assert "lo" not in nics
    assert _one(s, "haetae_host_boot_time_seconds") < time.time()
    for x in s:
        assert x.name.startswith("haetae_host_")
        assert x.value == x.value  # no NaN from psutil
        unitless = x.name.endswith(("_ratio", "_count", "load1", "load5", "load15"))
        assert unitless or x.name.endswith(("_bytes", "_total", "_seconds")), x.name


def _spawn(marker: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", marker],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def marker() -> str:
    return f"haetae-test-app-{uuid.uuid4().hex}"


@pytest.fixture
def app_proc(marker: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = _spawn(marker)
    yield proc
    if proc.poll() is None:
        _stop(proc)


def _assert_up(samples: list[Sample], proc: subprocess.Popen[bytes]) -> None:
    assert _one(samples, "haetae_process_up") == 1.0
    assert _one(samples, "haetae_process_start_time_seconds") == pytest.approx(
        psutil.Process(proc.pid).create_time()
    )
    assert _one(samples, "haetae_process_resident_memory_bytes") > 0
    assert _one(samples, "haetae_process_virtual_memory_bytes") > 0
    assert _one(samples, "haetae_process_threads") >= 1
    assert _one(samples, "haetae_process_open_fds") >= 3
    assert _one(samples, "haetae_process_cpu_seconds_total", mode="user") >= 0
    assert _one(samples, "haetae_process_context_switches_total", kind="voluntary") >= 0


async def test_process_by_pid(app_proc: subprocess.Popen[bytes]) -> None:
    collector = ProcessCollector(pid=app_proc.pid)
    _assert_up(await collector.collect(), app_proc)
    _stop(app_proc)
    assert _one(await collector.collect(), "haetae_process_up") == 0.0


async def test_process_by_pid_file_follows_restart(
    app_proc: subprocess.Popen[bytes], marker: str, tmp_path: Path
) -> None:
    pid_file = tmp_path / "app.pid"
    collector = ProcessCollector(pid_file=pid_file)
    assert _one(await collector.collect(), "haetae_process_up") == 0.0  # no pid file yet
    pid_file.write_text(f"{app_proc.pid}\n")
    _assert_up(await collector.collect(), app_proc)

    _stop(app_proc)
    restarted = _spawn(marker)
    try:
        pid_file.write_text(f"{restarted.pid}\n")
        samples = await collector.collect()
        _assert_up(samples, restarted)
        assert _one(samples, "haetae_process_restarts_total") == 1.0
    finally:
        _stop(restarted)


async def test_process_by_cmdline_follows_restart(
    app_proc: subprocess.Popen[bytes], marker: str
) -> None:
    collector = ProcessCollector(cmdline_match=marker)
    _assert_up(await collector.collect(), app_proc)
    _stop(app_proc)
    down = await collector.collect()
    assert _one(down, "haetae_process_up") == 0.0
    restarted = _spawn(marker)
    try:
        samples = await collector.collect()
        _assert_up(samples, restarted)
        assert _one(samples, "haetae_process_restarts_total") == 1.0
    finally:
        _stop(restarted)


async def test_process_cmdline_prefers_the_oldest_match(marker: str) -> None:
    parent = _spawn(marker)
    await asyncio.sleep(0.05)  # distinct start times (psutil's resolution is 10 ms)
    worker = _spawn(marker)
    try:
        samples = await ProcessCollector(cmdline_match=marker).collect()
        _assert_up(samples, parent)
    finally:
        _stop(worker)
        _stop(parent)


def test_process_never_matches_the_agent_itself(marker: str) -> None:
    # An agent whose own command line contains the match string must not watch itself.
    code = (
        "import asyncio, sys\n"
        "from agent.collectors.process import ProcessCollector\n"
        "c = ProcessCollector(cmdline_match=sys.argv[1])\n"
        "s = asyncio.run(c.collect())\n"
        "print([x.value for x in s if x.name == 'haetae_process_up'][0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, marker], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0.0"
