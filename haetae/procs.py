"""Child-process helpers: children that cannot outlive their parent, and leftovers of a killed run.

PR_SET_PDEATHSIG fires when the *thread* that started the child exits, so start long-lived
children from a long-lived thread (the main thread, as ``haetae up`` and pytest fixtures do).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1


def die_with_parent_on(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` for Popen: the kernel sends ``sig`` to the child when the parent dies,
    even by SIGKILL, so a killed supervisor leaves no orphans (Linux only; elsewhere a no-op).

    Popen applies ``user``/``group`` before ``preexec_fn``, and a credential change clears the
    setting, so this still holds for a child started as another user."""
    parent = os.getpid()

    def preexec() -> None:
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            # The parent died between fork and prctl: no signal will come, so leave now.
            os._exit(1)

    return preexec


def die_with_parent() -> None:
    """``preexec_fn`` for Popen: SIGTERM to the child when the parent dies (see above)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def processes_in(directory: Path, name: str) -> list[psutil.Process]:
    """Live processes called ``name`` whose working directory is ``directory``.

    PostgreSQL (every process of a cluster) and redis-server chdir into their data directory, so
    this finds a server left by an earlier run whatever its pid file says."""
    target = os.path.realpath(directory)
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != name:
            continue
        try:
            if proc.cwd() == target and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def stop_processes(
    procs: list[psutil.Process], signals: tuple[int, ...], wait_s: float = 10.0
) -> list[psutil.Process]:
    """Send each signal in turn to the processes still alive, waiting ``wait_s`` after each;
    SIGKILL the rest. Returns the processes that were found alive (for the caller's message)."""
    alive = [p for p in procs if p.is_running()]
    stopped = list(alive)
    for sig in signals:
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)
        _, alive = psutil.wait_procs(alive, timeout=wait_s)
        if not alive:
            return stopped
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=wait_s)
    return stopped
