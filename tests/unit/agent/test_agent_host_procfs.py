"""The host collector's own /proc readers agree with psutil's parsing of the same text."""

from __future__ import annotations

import os
import sys

import psutil
import pytest

from agent.collectors import host
from agent.collectors.host import HostCollector, _cpu_seconds, _diskstats, _netdev, _ProcFile

DISKSTATS = b"""\
 259       0 nvme0n1 100 5 2000 30 200 7 4000 60 0 90 95 0 0 0 0 3 4
 259       1 nvme0n1p1 10 20 30 40
   8       0 sda 1 2 3 4 5 6 7 8 9 10 11
"""

NETDEV = b"""\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs ...
    lo:    1000      10    0    0    0     0          0         0     1000      10  0 0 0 0 0 0
  eth0: 5000 50 1 2 0 0 0 0 7000 70 3 4 0 0 0 0
"""


def test_diskstats_reads_disks_and_partitions_as_psutil_does() -> None:
    assert _diskstats(DISKSTATS) == {
        # bytes read, bytes written (512-byte sectors), reads, writes, busy ms
        "nvme0n1": (2000 * 512, 4000 * 512, 100, 200, 90),
        "nvme0n1p1": (20 * 512, 40 * 512, 10, 30, 0),
        "sda": (3 * 512, 7 * 512, 1, 5, 10),
    }
    assert _diskstats(b"   3     0   8 hda 8 8 8 8 8 8 8 8 8 8 8\n") is None  # Linux 2.4
    assert _diskstats(None) is None


def test_netdev_reads_counters_in_metric_order() -> None:
    got = _netdev(NETDEV)
    assert got == {
        "lo": (1000, 1000, 10, 10, 0, 0, 0, 0),
        # rx bytes, tx bytes, rx packets, tx packets, rx errs, tx errs, rx drop, tx drop
        "eth0": (5000, 7000, 50, 70, 1, 3, 2, 4),
    }
    assert [m for m, _ in host._NIC_FIELDS][:2] == ["bytes_recv", "bytes_sent"]
    assert _netdev(NETDEV.replace(b"eth0: 5000", b"eth0: ")) is None


def test_cpu_seconds_in_clock_ticks() -> None:
    data = b"cpu  100 200 300 400 500 0 0 0 0 0\ncpu0 1 2 3 4 5 0 0 0 0 0\n"
    ticks = host._CLOCK_TICKS
    assert _cpu_seconds(data, 4) == (100 / ticks, 200 / ticks, 300 / ticks, 400 / ticks)
    assert _cpu_seconds(data, 11) is None
    assert _cpu_seconds(b"intr 1\n", 4) is None


def test_proc_file_reads_again_and_gives_up_when_missing() -> None:
    missing = _ProcFile("/nonexistent/haetae-proc-file")
    assert missing.read() is None
    assert missing.read() is None
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc")
    stat = _ProcFile("/proc/stat")
    first, second = stat.read(), stat.read()
    assert first is not None and second is not None
    assert first.startswith(b"cpu ") and second.startswith(b"cpu ")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
def test_fast_path_yields_the_same_series_as_psutil() -> None:
    fast = HostCollector()
    slow = HostCollector()
    for f in (slow._proc_stat, slow._proc_diskstats, slow._proc_netdev, slow._proc_meminfo):
        f._failed = True  # forces the psutil fallback
    a = {(s.name, tuple(sorted(s.labels.items()))) for s in fast.collect_blocking()}
    b = {(s.name, tuple(sorted(s.labels.items()))) for s in slow.collect_blocking()}
    assert a == b
    nics = {x[1][0][1] for x in a if x[0] == "haetae_host_network_receive_bytes_total"}
    assert nics == {
        n for n in psutil.net_io_counters(pernic=True) if not host._IGNORED_NICS.match(n)
    }
