"""Structured JSON logs with Elastic Common Schema field names (ships unchanged to ELK/Loki)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import IO

import ecs_logging


def setup_logging(
    level: str = "INFO", *, json_format: bool = True, service: str = "haetae"
) -> None:
    """Configure the root logger once per process: one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(ecs_logging.StdlibFormatter(extra={"service": {"name": service}}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Per-request access lines are already in the latency histogram; keep them out of INFO.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class RotatingLogFile:
    """A size-bounded log file for a child's output: ``path``, then ``path.1`` .. ``path.N``
    (oldest dropped), so a chatty or crash-looping child cannot fill the disk. Shared by the
    successive runs of one child; created owner-only, as logs may quote DSNs or URLs."""

    def __init__(self, path: Path, *, max_bytes: int = 10 * 2**20, backups: int = 3) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._fd is None:
                self._open()
            elif self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            assert self._fd is not None
            os.write(self._fd, data)
            self._size += len(data)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._open()


def pump_output(stream: IO[bytes], log: RotatingLogFile, name: str) -> threading.Thread:
    """Copy a child's stdout/stderr pipe into ``log`` on a daemon thread until EOF (the child and
    every process that inherited the pipe have exited)."""

    def run() -> None:
        with stream:
            try:
                while chunk := stream.read1(65536):  # type: ignore[attr-defined]
                    log.write(chunk)
            except OSError:  # the log's directory was removed (a throwaway server): drop the rest
                pass

    thread = threading.Thread(target=run, name=f"log-{name}", daemon=True)
    thread.start()
    return thread
