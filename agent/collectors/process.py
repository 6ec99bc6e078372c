"""The watched app process: found by pid, pid file or command line, followed across restarts."""

from __future__ import annotations

import contextlib
import os
import weakref
from dataclasses import dataclass
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
        # Linux: the followed process's /proc files, held open (see _PidFiles).
        self._files: _PidFiles | None = None
        self._no_files_for: int | None = None

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
        files = self._files
        if (files is None or files.pid != proc.pid) and self._no_files_for != proc.pid:
            files = self._files = _PidFiles.open(proc)
            if files is None:
                self._no_files_for = proc.pid  # not Linux, or not readable: psutil from now on
        if files is not None and files.pid == proc.pid:
            stats = files.read()
            if stats is None:  # exited (and reaped): found again, or not, by the thread
                files.close()
                self._files = None
                return None
            if stats.zombie:
                self._proc = None  # it exited; found again (restarted) next cycle
                return self._down()
            return self._samples(stats, files.num_fds())
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
        stats = _Stats(
            False, cpu.user, cpu.system, mem.rss, mem.vms, threads, ctx.voluntary, ctx.involuntary
        )
        return self._samples(stats, fds)

    def _samples(self, stats: _Stats, fds: int | None) -> list[Sample]:
        assert self._identity is not None
        out = [
            Sample("haetae_process_up", {}, 1.0),
            Sample("haetae_process_cpu_seconds_total", _USER, stats.user),
            Sample("haetae_process_cpu_seconds_total", _SYSTEM, stats.system),
            Sample("haetae_process_resident_memory_bytes", {}, float(stats.rss)),
            Sample("haetae_process_virtual_memory_bytes", {}, float(stats.vms)),
            Sample("haetae_process_threads", {}, float(stats.threads)),
            Sample("haetae_process_context_switches_total", _VOLUNTARY, stats.voluntary),
            Sample("haetae_process_context_switches_total", _INVOLUNTARY, stats.involuntary),
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


_USER = {"mode": "user"}
_SYSTEM = {"mode": "system"}
_VOLUNTARY = {"kind": "voluntary"}
_INVOLUNTARY = {"kind": "involuntary"}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True, slots=True)
class _Stats:
    zombie: bool
    user: float  # CPU seconds
    system: float
    rss: int  # bytes
    vms: int
    threads: int
    voluntary: int
    involuntary: int


class _PidFiles:
    """``/proc/<pid>/stat``, ``statm`` and ``status`` of the followed process, held open and
    re-read with one ``pread`` each: what psutil's oneshot() reads, without its opens, closes,
    and the extra stat read of ``is_running()`` every cycle.

    Held descriptors also follow the process itself, not its pid: once it has exited and been
    reaped, reads fail with ESRCH even if the pid was reused, so no other process is ever read
    in its place. The files are opened before psutil confirms (pid, start time) again, so they
    belong to the process found. Anything unreadable or unexpected: None, and psutil is used.
    """

    def __init__(self, pid: int, fds: list[int]) -> None:
        self.pid = pid
        self._fds = fds
        weakref.finalize(self, _close_all, fds)

    @classmethod
    def open(cls, proc: psutil.Process) -> _PidFiles | None:
        fds: list[int] = []
        try:
            for name in ("stat", "statm", "status"):
                fds.append(os.open(f"/proc/{proc.pid}/{name}", os.O_RDONLY | os.O_CLOEXEC))
            files = cls(proc.pid, fds)
            if files.read() is not None and proc.is_running():
                return files
        except (OSError, psutil.Error):
            pass
        _close_all(fds)
        return None

    def read(self) -> _Stats | None:
        if len(self._fds) != 3:
            return None
        try:
            stat = os.pread(self._fds[0], 4096, 0)
            statm = os.pread(self._fds[1], 4096, 0)
            status = os.pread(self._fds[2], 16384, 0)
        except OSError:  # ESRCH: exited and reaped
            return None
        try:
            # The command name (in parentheses) may hold spaces and ")": split after the last.
            f = stat[stat.rindex(b")") + 2 :].split()
            m = statm.split()
            voluntary = _status_field(status, b"\nvoluntary_ctxt_switches:")
            involuntary = _status_field(status, b"\nnonvoluntary_ctxt_switches:")
            return _Stats(
                f[0] == b"Z",
                int(f[11]) / _CLOCK_TICKS,
                int(f[12]) / _CLOCK_TICKS,
                int(m[1]) * _PAGE_SIZE,
                int(m[0]) * _PAGE_SIZE,
                int(f[17]),
                voluntary,
                involuntary,
            )
        except (ValueError, IndexError):
            return None

    def num_fds(self) -> int | None:
        """Open descriptors (psutil's num_fds() without its wrappers), None if not allowed."""
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None

    def close(self) -> None:
        _close_all(self._fds)


def _status_field(status: bytes, key: bytes) -> int:
    """The number after ``key`` (a line start, with its newline) in /proc/<pid>/status."""
    start = status.index(key) + len(key)
    end = status.find(b"\n", start)
    return int(status[start:end] if end >= 0 else status[start:])


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


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
