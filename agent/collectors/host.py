"""Host metrics from psutil: CPU, load, memory, swap, filesystems, disk and network I/O."""

from __future__ import annotations

import contextlib
import os
import re
import time
import weakref
from typing import TYPE_CHECKING

import psutil

from agent.collectors.base import BlockingCollector, Sample, register

if TYPE_CHECKING:
    from agent.http.client import HttpClient
    from agent.settings import AgentSettings

# Partitions and virtual devices would double-count their whole disk (node_exporter's default).
_IGNORED_DISKS = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p|md\d+p)\d+$")
# Per-container veth pairs come and go with every container: unbounded series for little value.
_IGNORED_NICS = re.compile(r"^(lo|veth.*)$")
# Guest time is already counted in user/nice on Linux; adding it would exceed 100 %.
_GUEST_MODES = frozenset({"guest", "guest_nice"})
_IDLE_MODES = frozenset({"idle", "iowait"})
_MOUNTS_TTL_S = 60.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# /proc/meminfo keys (in kB) -> position in (total, available, swap total, swap free).
_MEMINFO_KEYS = {b"MemTotal:": 0, b"MemAvailable:": 1, b"SwapTotal:": 2, b"SwapFree:": 3}

_DISK_FIELDS = (
    ("read_bytes", "haetae_host_disk_read_bytes_total", 1.0),
    ("write_bytes", "haetae_host_disk_written_bytes_total", 1.0),
    ("read_count", "haetae_host_disk_reads_completed_total", 1.0),
    ("write_count", "haetae_host_disk_writes_completed_total", 1.0),
    ("busy_time", "haetae_host_disk_io_time_seconds_total", 0.001),  # psutil gives ms
)
_NIC_FIELDS = (
    ("bytes_recv", "haetae_host_network_receive_bytes_total"),
    ("bytes_sent", "haetae_host_network_transmit_bytes_total"),
    ("packets_recv", "haetae_host_network_receive_packets_total"),
    ("packets_sent", "haetae_host_network_transmit_packets_total"),
    ("errin", "haetae_host_network_receive_errors_total"),
    ("errout", "haetae_host_network_transmit_errors_total"),
    ("dropin", "haetae_host_network_receive_drop_total"),
    ("dropout", "haetae_host_network_transmit_drop_total"),
)


@register
class HostCollector(BlockingCollector):
    name = "host"

    def __init__(self) -> None:
        super().__init__()
        self._last_cpu: dict[str, float] | None = None  # CPU seconds by mode, last cycle
        self._last_ratios: list[Sample] = []
        # Constant for the life of the agent: read once, not every cycle.
        self._boot_time = psutil.boot_time()
        self._cpu_count = float(psutil.cpu_count() or 0)
        self._mounts: list[tuple[str, dict[str, str]]] = []
        self._mounts_read_at = -_MOUNTS_TTL_S
        # Label dicts reused across cycles (the report encoder only reads them).
        self._device_labels: dict[str, dict[str, str]] = {}
        # Linux: the /proc files psutil would open, parse and close every cycle, kept open and
        # re-read with one pread each (the kernel regenerates them at offset 0). Any read or
        # parse that fails falls back to psutil for that figure.
        self._cpu_fields: tuple[str, ...] = tuple(psutil.cpu_times()._fields)
        self._proc_stat = _ProcFile("/proc/stat")
        self._proc_meminfo = _ProcFile("/proc/meminfo")
        self._proc_diskstats = _ProcFile("/proc/diskstats")
        self._proc_netdev = _ProcFile("/proc/net/dev")

    @classmethod
    def from_config(cls, config: AgentSettings, session: HttpClient) -> HostCollector:
        return cls()

    def collect_quick(self) -> list[Sample] | None:
        # /proc reads and statvfs of local block-device filesystems (network and FUSE mounts
        # are left out, see _real_mounts) are answered from memory: no need for a thread.
        return self.collect_blocking()

    def collect_blocking(self) -> list[Sample]:
        out: list[Sample] = []
        self._cpu(out)
        load1, load5, load15 = os.getloadavg()
        out.append(Sample("haetae_host_load1", {}, load1))
        out.append(Sample("haetae_host_load5", {}, load5))
        out.append(Sample("haetae_host_load15", {}, load15))
        self._memory(out)
        self._filesystems(out)
        self._disks(out)
        self._network(out)
        out.append(Sample("haetae_host_boot_time_seconds", {}, self._boot_time))
        return out

    def _cpu(self, out: list[Sample]) -> None:
        out.append(Sample("haetae_host_cpu_count", {}, self._cpu_count))
        fields = self._cpu_fields
        values = _cpu_seconds(self._proc_stat.read(), len(fields))
        if values is None:
            values = tuple(psutil.cpu_times())
        now = dict(zip(fields, values, strict=True))
        for mode, value in now.items():
            out.append(Sample("haetae_host_cpu_seconds_total", {"mode": mode}, value))
        # Ratios over the last cycle; on the first cycle, over the time since boot.
        modes = [m for m in fields if m not in _GUEST_MODES]
        base = self._last_cpu if self._last_cpu is not None else dict.fromkeys(fields, 0.0)
        delta = {m: now[m] - base[m] for m in modes}
        total = sum(delta.values())
        if total > 0:
            self._last_cpu = now
            idle = sum(delta[m] for m in modes if m in _IDLE_MODES)
            ratios = [Sample("haetae_host_cpu_usage_ratio", {"cpu": "total"}, 1.0 - idle / total)]
            for mode in modes:
                ratios.append(
                    Sample("haetae_host_cpu_mode_ratio", {"mode": mode}, delta[mode] / total)
                )
            self._last_ratios = ratios
        # Less than a clock tick since the last cycle: repeat its ratios rather than leave a gap.
        out.extend(self._last_ratios)

    def _memory(self, out: list[Sample]) -> None:
        mem = _meminfo(self._proc_meminfo.read())
        if mem is None:  # not Linux, or a kernel without MemAvailable
            vm, sw = psutil.virtual_memory(), psutil.swap_memory()
            mem = (float(vm.total), float(vm.available), float(sw.total), float(sw.free))
        total, available, swap_total, swap_free = mem
        out.append(Sample("haetae_host_memory_total_bytes", {}, total))
        out.append(Sample("haetae_host_memory_available_bytes", {}, available))
        if total:
            out.append(Sample("haetae_host_memory_used_ratio", {}, 1.0 - available / total))
        out.append(Sample("haetae_host_swap_total_bytes", {}, swap_total))
        out.append(Sample("haetae_host_swap_used_bytes", {}, swap_total - swap_free))

    def _filesystems(self, out: list[Sample]) -> None:
        for mountpoint, labels in self._real_mounts():
            try:
                usage = psutil.disk_usage(mountpoint)
            except OSError:
                continue  # unmounted since the mount table was read
            out.append(Sample("haetae_host_filesystem_size_bytes", labels, float(usage.total)))
            # avail is what non-root users may still write (statvfs f_bavail), as df shows it.
            out.append(Sample("haetae_host_filesystem_avail_bytes", labels, float(usage.free)))
            if usage.used + usage.free:
                ratio = usage.used / (usage.used + usage.free)
                out.append(Sample("haetae_host_filesystem_used_ratio", labels, ratio))

    def _real_mounts(self) -> list[tuple[str, dict[str, str]]]:
        """Mounts of block-device filesystems, re-read once a minute (the mount table rarely
        changes, and reading it is the costliest part of a cycle).

        all=False leaves out proc, tmpfs, overlay and network mounts (a hung NFS server would
        hang statvfs). Bind mounts repeat a device; its shortest mount path is kept.
        """
        now = time.monotonic()
        if now - self._mounts_read_at >= _MOUNTS_TTL_S:
            seen: set[str] = set()
            mounts = []
            for part in sorted(psutil.disk_partitions(all=False), key=lambda p: len(p.mountpoint)):
                if part.device not in seen:
                    seen.add(part.device)
                    labels = {"mountpoint": part.mountpoint, "device": part.device}
                    mounts.append((part.mountpoint, labels | {"fstype": part.fstype}))
            self._mounts, self._mounts_read_at = mounts, now
        return self._mounts

    def _labels(self, device: str) -> dict[str, str]:
        labels = self._device_labels.get(device)
        if labels is None:
            if len(self._device_labels) > 1024:  # devices come and go; forget the old ones
                self._device_labels.clear()
            labels = self._device_labels[device] = {"device": device}
        return labels

    def _disks(self, out: list[Sample]) -> None:
        # Without nowrap psutil skips its wrap bookkeeping; a counter reset is what rate()
        # already handles.
        fast = _diskstats(self._proc_diskstats.read())
        if fast is not None:
            for device, values in fast.items():
                if _IGNORED_DISKS.match(device):
                    continue
                labels = self._labels(device)
                for (_, metric, scale), count in zip(_DISK_FIELDS, values, strict=True):
                    out.append(Sample(metric, labels, count * scale))
            return
        counters = psutil.disk_io_counters(perdisk=True, nowrap=False) or {}
        for device, c in counters.items():
            if _IGNORED_DISKS.match(device):
                continue
            labels = self._labels(device)
            for attr, metric, scale in _DISK_FIELDS:
                value = getattr(c, attr, None)
                if value is not None:
                    out.append(Sample(metric, labels, value * scale))

    def _network(self, out: list[Sample]) -> None:
        fast = _netdev(self._proc_netdev.read())
        if fast is not None:
            for nic, values in fast.items():
                if _IGNORED_NICS.match(nic):
                    continue
                labels = self._labels(nic)
                for (_, metric), value in zip(_NIC_FIELDS, values, strict=True):
                    out.append(Sample(metric, labels, float(value)))
            return
        counters = psutil.net_io_counters(pernic=True, nowrap=False)
        for nic, c in counters.items():
            if _IGNORED_NICS.match(nic):
                continue
            labels = self._labels(nic)
            for attr, metric in _NIC_FIELDS:
                out.append(Sample(metric, labels, float(getattr(c, attr))))


def _meminfo(data: bytes | None) -> tuple[float, float, float, float] | None:
    """Linux: memory and swap figures from one read of /proc/meminfo, in bytes.

    psutil's virtual_memory() and swap_memory() together read it twice, plus /proc/vmstat for
    swap-in/out figures we do not report: a quarter of the host collector's time.
    """
    if data is None:
        return None
    found = [-1.0] * 4
    for line in data.split(b"\n"):
        key, _, rest = line.partition(b" ")
        i = _MEMINFO_KEYS.get(key)
        if i is not None:
            found[i] = float(rest.split()[0]) * 1024
    if min(found) < 0:
        return None
    return found[0], found[1], found[2], found[3]


class _ProcFile:
    """A /proc file kept open and read whole from offset 0 with one ``pread``: the kernel
    regenerates the text on every read from the start, so this costs one syscall a cycle
    instead of psutil's open, read, close and text decoding. ``read`` returns None when the
    file cannot be read (not Linux, say), from then on, and the caller falls back to psutil."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fds: list[int] = []  # the open descriptor (at most one), shared with finalize
        self._failed = False
        self._size = 16 * 1024
        weakref.finalize(self, _close_all, self._fds)

    def read(self) -> bytes | None:
        if self._failed:
            return None
        try:
            if not self._fds:
                self._fds.append(os.open(self._path, os.O_RDONLY | os.O_CLOEXEC))
            while True:
                data = os.pread(self._fds[0], self._size, 0)
                if len(data) < self._size:
                    return data
                self._size *= 4  # the whole text in one read: never a torn table
        except OSError:
            self._failed = True
            _close_all(self._fds)
            return None


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def _cpu_seconds(data: bytes | None, count: int) -> tuple[float, ...] | None:
    """The first ``count`` fields of /proc/stat's ``cpu`` line in seconds, as psutil's
    cpu_times() reads them."""
    if data is None or not data.startswith(b"cpu "):
        return None
    fields = data[: data.find(b"\n")].split()[1 : count + 1]
    if len(fields) != count:
        return None
    return tuple(int(x) / _CLOCK_TICKS for x in fields)


def _diskstats(data: bytes | None) -> dict[str, tuple[int, int, int, int, int]] | None:
    """/proc/diskstats as psutil's disk_io_counters(perdisk=True) reads it: by device, bytes
    read and written (512-byte sectors), reads and writes completed, busy time (ms), in the
    order of ``_DISK_FIELDS``. None for a layout psutil would read otherwise (Linux 2.4)."""
    if data is None:
        return None
    out: dict[str, tuple[int, int, int, int, int]] = {}
    for line in data.split(b"\n"):
        f = line.split()
        n = len(f)
        if n == 14 or n >= 18:  # a disk (4.18+ and 5.5+ add fields at the end)
            out[os.fsdecode(f[2])] = (
                int(f[5]) * 512,
                int(f[9]) * 512,
                int(f[3]),
                int(f[7]),
                int(f[12]),
            )
        elif n == 7:  # a partition on Linux 2.6
            out[os.fsdecode(f[2])] = (int(f[4]) * 512, int(f[6]) * 512, int(f[3]), int(f[5]), 0)
        elif n:
            return None
    return out


def _netdev(data: bytes | None) -> dict[str, tuple[int, ...]] | None:
    """/proc/net/dev as psutil's net_io_counters(pernic=True) reads it: by interface, the
    counters of ``_NIC_FIELDS`` in their order."""
    if data is None:
        return None
    out: dict[str, tuple[int, ...]] = {}
    for line in data.split(b"\n")[2:]:
        if not line:
            continue
        colon = line.rfind(b":")
        f = line[colon + 1 :].split()
        if colon <= 0 or len(f) != 16:
            return None
        out[os.fsdecode(line[:colon].strip())] = tuple(
            int(f[i]) for i in (0, 8, 1, 9, 2, 10, 3, 11)
        )
    return out
