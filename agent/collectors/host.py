"""Host metrics from psutil: CPU, load, memory, swap, filesystems, disk and network I/O."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import psutil

from agent.collectors.base import BlockingCollector, Sample, register

if TYPE_CHECKING:
    from aiohttp import ClientSession

    from agent.config import AgentConfig

# Partitions and virtual devices would double-count their whole disk (node_exporter's default).
_IGNORED_DISKS = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p|md\d+p)\d+$")
# Per-container veth pairs come and go with every container: unbounded series for little value.
_IGNORED_NICS = re.compile(r"^(lo|veth.*)$")
# Guest time is already counted in user/nice on Linux; adding it would exceed 100 %.
_GUEST_MODES = frozenset({"guest", "guest_nice"})
_IDLE_MODES = frozenset({"idle", "iowait"})

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
        self._last_cpu: Any = None  # psutil's scputimes of the previous cycle

    @classmethod
    def from_config(cls, config: AgentConfig, session: ClientSession) -> HostCollector:
        return cls()

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
        out.append(Sample("haetae_host_boot_time_seconds", {}, psutil.boot_time()))
        return out

    def _cpu(self, out: list[Sample]) -> None:
        out.append(Sample("haetae_host_cpu_count", {}, float(psutil.cpu_count() or 0)))
        now = psutil.cpu_times()
        prev = self._last_cpu
        self._last_cpu = now
        modes = [m for m in now._fields if m not in _GUEST_MODES]
        for mode in now._fields:
            out.append(Sample("haetae_host_cpu_seconds_total", {"mode": mode}, getattr(now, mode)))
        # Ratios over the last cycle; on the first cycle, over the time since boot.
        base = prev if prev is not None else now._make(0.0 for _ in now)
        delta = {m: getattr(now, m) - getattr(base, m) for m in modes}
        total = sum(delta.values())
        if total <= 0:
            return
        idle = sum(delta[m] for m in modes if m in _IDLE_MODES)
        out.append(Sample("haetae_host_cpu_usage_ratio", {"cpu": "total"}, 1.0 - idle / total))
        for mode in modes:
            out.append(Sample("haetae_host_cpu_mode_ratio", {"mode": mode}, delta[mode] / total))

    def _memory(self, out: list[Sample]) -> None:
        vm = psutil.virtual_memory()
        out.append(Sample("haetae_host_memory_total_bytes", {}, float(vm.total)))
        out.append(Sample("haetae_host_memory_available_bytes", {}, float(vm.available)))
        if vm.total:
            used = 1.0 - vm.available / vm.total
            out.append(Sample("haetae_host_memory_used_ratio", {}, used))
        sw = psutil.swap_memory()
        out.append(Sample("haetae_host_swap_total_bytes", {}, float(sw.total)))
        out.append(Sample("haetae_host_swap_used_bytes", {}, float(sw.used)))

    def _filesystems(self, out: list[Sample]) -> None:
        # all=False keeps block-device filesystems only: no proc/tmpfs/overlay, no network
        # mounts that could hang statvfs. Bind mounts repeat a device; keep its shortest path.
        seen: set[str] = set()
        parts = sorted(psutil.disk_partitions(all=False), key=lambda p: len(p.mountpoint))
        for part in parts:
            if part.device in seen:
                continue
            seen.add(part.device)
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError:
                continue  # unmounted between the listing and the statvfs
            labels = {"mountpoint": part.mountpoint, "device": part.device, "fstype": part.fstype}
            out.append(Sample("haetae_host_filesystem_size_bytes", labels, float(usage.total)))
            # avail is what non-root users may still write (statvfs f_bavail), as df shows it.
            out.append(Sample("haetae_host_filesystem_avail_bytes", labels, float(usage.free)))
            if usage.used + usage.free:
                ratio = usage.used / (usage.used + usage.free)
                out.append(Sample("haetae_host_filesystem_used_ratio", labels, ratio))

    def _disks(self, out: list[Sample]) -> None:
        counters = psutil.disk_io_counters(perdisk=True, nowrap=True) or {}
        for device, c in counters.items():
            if _IGNORED_DISKS.match(device):
                continue
            labels = {"device": device}
            for attr, metric, scale in _DISK_FIELDS:
                value = getattr(c, attr, None)
                if value is not None:
                    out.append(Sample(metric, labels, value * scale))

    def _network(self, out: list[Sample]) -> None:
        counters = psutil.net_io_counters(pernic=True, nowrap=True)
        for nic, c in counters.items():
            if _IGNORED_NICS.match(nic):
                continue
            labels = {"device": nic}
            for attr, metric in _NIC_FIELDS:
                out.append(Sample(metric, labels, float(getattr(c, attr))))
