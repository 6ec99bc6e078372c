"""Reports the control plane refused for good, kept where a person can look at them.

A report answered with a "poison" 4xx (the report itself is at fault: it will never be accepted
as it is) leaves the spool, so the reports behind it flow again, and is appended here instead:
one JSON line each with when, the report id and seq, the status, the reason and the control
plane's problem detail, and the report body as sent (gzip, base64) when it is not too large, so
it can be inspected or replayed by hand. The file is bounded: past ``max_bytes`` it is rotated
to ``<name>.1`` (the one before that is dropped), so at most twice ``max_bytes`` stay on disk.
"""

from __future__ import annotations

import base64
import enum
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
# Larger bodies are summarised (size only): one huge report must not rotate all others away.
_MAX_BODY_KEPT = 256 * 1024


class DeadLetterReason(enum.StrEnum):
    """Why a report was dead-lettered (a metric label), from the control plane's status."""

    INVALID = "invalid"  # 400: decode refused it (the field is in the detail)
    TOO_LARGE = "too_large"  # 413
    UNSUPPORTED = "unsupported"  # 415
    UNPROCESSABLE = "unprocessable"  # 422: PostgreSQL refused its data, or a series limit
    OTHER = "other"  # any other poison 4xx

    @classmethod
    def of(cls, status: int) -> DeadLetterReason:
        return _BY_STATUS.get(status, cls.OTHER)


_BY_STATUS = {
    400: DeadLetterReason.INVALID,
    413: DeadLetterReason.TOO_LARGE,
    415: DeadLetterReason.UNSUPPORTED,
    422: DeadLetterReason.UNPROCESSABLE,
}


class DeadLetters:
    """The dead-letter file (``dead-letter.jsonl`` in the state directory). Thread-safe: appends
    run on the reporter's writer thread."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError("max_bytes must be at least 1024")
        self.path = path
        self._max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()

    def add(
        self,
        *,
        report_id: str,
        seq: int,
        status: int,
        reason: DeadLetterReason,
        detail: str,
        body: bytes,
    ) -> None:
        """Append one refused report (fsynced: it has just left the spool)."""
        entry: dict[str, object] = {
            "at": self._clock(),
            "report_id": report_id,
            "seq": seq,
            "status": status,
            "reason": reason.value,
            "detail": detail,
            "body_bytes": len(body),
        }
        if len(body) <= min(_MAX_BODY_KEPT, self._max_bytes // 4):
            entry["body_gzip_base64"] = base64.b64encode(body).decode()
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            self._rotate_if_full(len(line))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def entries(self) -> list[dict[str, object]]:
        """Every entry kept, oldest first (for tests and `haetae agent` diagnostics)."""
        out: list[dict[str, object]] = []
        for path in (self.path.with_name(self.path.name + ".1"), self.path):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            out.extend(orjson.loads(line) for line in data.splitlines() if line)
        return out

    def _rotate_if_full(self, adding: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size and size + adding > self._max_bytes:
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
