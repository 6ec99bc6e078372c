"""Small durable agent state under ``state_dir``: the agent token and the report sequence."""

from __future__ import annotations

import contextlib
from pathlib import Path

from agent.fsutil import write_atomic


class TokenStore:
    """The agent token issued at enrolment, kept in a file only its owner can read (0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        try:
            token = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return token or None

    def save(self, token: str) -> None:
        write_atomic(self.path, token.encode("utf-8") + b"\n", mode=0o600)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class SeqAllocator:
    """Report sequence numbers that keep increasing across restarts.

    Rather than one durable write per report, it persists a high-water mark ``block`` numbers
    ahead and, after a restart, resumes from that mark (skipping unused numbers is harmless:
    the sequence is for diagnostics and only has to increase).
    """

    def __init__(self, path: Path, *, block: int = 1000) -> None:
        self._path = path
        self._block = block
        try:
            mark = int(path.read_text(encoding="ascii").strip() or 0)
        except FileNotFoundError:
            mark = 0
        except ValueError:
            mark = 0  # a damaged file: only diagnostics suffer
        self._next = max(mark, 1)
        self._limit = self._next

    def next(self) -> int:
        if self._next >= self._limit:
            self._limit = self._next + self._block
            write_atomic(self._path, f"{self._limit}\n".encode("ascii"), mode=0o600)
        value = self._next
        self._next += 1
        return value
