"""The watched app process: found by pid, pid file or command line, followed across restarts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from agent.collectors.base import BlockingCollector, Sample, register
from agent.errors import CollectorError

if TYPE_CHECKING:
    from agent.http.client import HttpClient
    from agent.settings import AgentSettings


@register
class ProcessCollector(BlockingCollector):
    """Samples one process. The target is re-resolved whenever the one it follows has exited,
    and (for a pid file) whenever the file names another pid, so an app restart is followed."""

    name = "process"

    def __init__(
        self,
        *,
        pid: int | None = None,
        pid_file: Path | None = None,
        cmdline_match: str | None = None,
    ) -> None:
        super().__init__()
        if (pid, pid_file, cmdline_match) == (None, None, None):
            raise ValueError("one of pid, pid_file or cmdline_match is required")
        self._pid = pid
        self._pid_file = pid_file if pid is None else None
        self._match = cmdline_match if pid is None and pid_file is None else None
        self._own_pid = os.getpid()
        self._proc: psutil.Process | None = None
        self._identity: tuple[int, float] | None = None  # (pid, start time): survives pid reuse
        self._restarts = 0

    @classmethod
    def from_config(cls, config: AgentSettings, session: HttpClient) -> ProcessCollector | None:
        t = config.process
        if t.pid is None and t.pid_file is None and not t.cmdline_match:
            return None
        return cls(pid=t.pid, pid_file=t.pid_file, cmdline_match=t.cmdline_match or None)

    def collect_quick(self) -> list[Sample] | None:
        """The steady state, on the event loop: the followed process is still there, so only
        its own /proc files are read. Finding it (a pid file read, or a scan of every
        process's command line, which can block on a process stuck in the kernel) is left to
        the worker thread."""
        proc = self._proc
        if proc is None or self._pid_file is not None:
            return None
        try:
            if not proc.is_running():
                return None
        except psutil.Error:
            return None
        return self._sample(proc)

    def collect_blocking(self) -> list[Sample]:
        proc = self._resolve()
        if proc is None:
            return self._down()
        return self._sample(proc)

    def _sample(self, proc: psutil.Process) -> list[Sample]:
        try:
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:  # from the stat read oneshot caches
                    self._proc = None  # it exited; found again (restarted) next cycle
                    return self._down()
                cpu = proc.cpu_times()
                mem = proc.memory_info()
                threads = proc.num_threads()
                ctx = proc.num_ctx_switches()
                fds = _num_fds(proc)
        except psutil.NoSuchProcess:
            self._proc = None  # exited between resolving and reading: found again next cycle
            return self._down()
        except psutil.AccessDenied as exc:
            raise CollectorError(
                f"no permission to inspect pid {proc.pid}", samples=self._down()
            ) from exc
        assert self._identity is not None
        out = [
            Sample("haetae_process_up", {}, 1.0),
            Sample("haetae_process_cpu_seconds_total", {"mode": "user"}, cpu.user),
            Sample("haetae_process_cpu_seconds_total", {"mode": "system"}, cpu.system),
            Sample("haetae_process_resident_memory_bytes", {}, float(mem.rss)),
            Sample("haetae_process_virtual_memory_bytes", {}, float(mem.vms)),
            Sample("haetae_process_threads", {}, float(threads)),
            Sample("haetae_process_context_switches_total", {"kind": "voluntary"}, ctx.voluntary),
            Sample(
                "haetae_process_context_switches_total", {"kind": "involuntary"}, ctx.involuntary
            ),
            Sample("haetae_process_start_time_seconds", {}, self._identity[1]),
            Sample("haetae_process_restarts_total", {}, float(self._restarts)),
        ]
        if fds is not None:
            out.append(Sample("haetae_process_open_fds", {}, float(fds)))
        return out

    def _down(self) -> list[Sample]:
        return [
            Sample("haetae_process_up", {}, 0.0),
            Sample("haetae_process_restarts_total", {}, float(self._restarts)),
        ]

    def _resolve(self) -> psutil.Process | None:
        wanted = self._read_pid_file() if self._pid_file is not None else self._pid
        proc = self._proc
        # is_running() compares start times, so a reused pid is not taken for our process.
        if proc is not None and (wanted is None or proc.pid == wanted) and proc.is_running():
            return proc
        proc = self._find(wanted)
        self._proc = proc
        if proc is not None:
            identity = (proc.pid, proc.create_time())
            if self._identity is not None and identity != self._identity:
                self._restarts += 1
            self._identity = identity
        return proc

    def _find(self, pid: int | None) -> psutil.Process | None:
        if pid is not None:
            try:
                proc = psutil.Process(pid)
            except psutil.NoSuchProcess:
                return None
            return proc if _alive(proc) else None
        if self._match is None:
            return None  # a pid file that names no running process yet
        # The oldest match is the app's parent (gunicorn master, not a worker it re-forks).
        best: psutil.Process | None = None
        best_start = float("inf")
        for proc in psutil.process_iter(["cmdline", "create_time"]):
            if proc.pid == self._own_pid:
                continue
            cmdline = proc.info["cmdline"]
            if not cmdline or self._match not in " ".join(cmdline):
                continue
            start = proc.info["create_time"] or 0.0
            if start < best_start and _alive(proc):
                best, best_start = proc, start
        return best

    def _read_pid_file(self) -> int | None:
        assert self._pid_file is not None
        try:
            text = self._pid_file.read_text(encoding="ascii", errors="replace").strip()
        except FileNotFoundError:
            return None  # the app is not running (or not yet started)
        except OSError as exc:
            raise CollectorError(
                f"cannot read pid file {self._pid_file}: {exc.strerror}", samples=self._down()
            ) from exc
        if not text.isdigit() or int(text) < 1:
            raise CollectorError(
                f"pid file {self._pid_file} holds {text[:20]!r}, not a pid", samples=self._down()
            )
        return int(text)


def _alive(proc: psutil.Process) -> bool:
    # is_running() also guards against pid reuse; a zombie has exited but is not yet reaped.
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _num_fds(proc: psutil.Process) -> int | None:
    """Open descriptors, or None where the platform or permissions do not tell."""
    try:
        return int(proc.num_fds())
    except (psutil.AccessDenied, AttributeError):  # AttributeError: not on Windows
        return None
