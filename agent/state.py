"""Small durable agent state under ``state_dir``: the agent token and the report sequence."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import orjson

from agent.fsutil import write_atomic

_SEQ_WIDTH = 21  # 20 digits and a newline: rewritten in place, never shorter


class TokenStore:
    """The agent token issued at enrolment, kept in a file only its owner can read (0600).

    The file also names the agent the token was issued to: a token of another ``agent_id``
    (the config changed, the state directory did not) is not used, as the control plane would
    refuse every report with it.
    """

    def __init__(self, path: Path, agent_id: str) -> None:
        self.path = path
        self.agent_id = agent_id

    def load(self) -> str | None:
        try:
            doc = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError:
            return None  # damaged: enrol again
        if not isinstance(doc, dict) or doc.get("agent_id") != self.agent_id:
            return None
        token = doc.get("token")
        return token if isinstance(token, str) and token else None

    def save(self, token: str) -> None:
        doc = {"agent_id": self.agent_id, "token": token}
        write_atomic(self.path, orjson.dumps(doc) + b"\n", mode=0o600)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class SeqAllocator:
    """Report sequence numbers: contiguous, and increasing across restarts.

    Each number handed out is written to ``path`` at once but without fsync: if the agent
    crashes, the page cache still has it. A machine crash can leave the file behind, so the
    caller also passes ``at_least``, the last number in the spool (whose records are fsynced
    before anything is sent): no number is used twice, and none is skipped, so a gap in what
    the control plane stored really is a lost report.
    """

    def __init__(self, path: Path, *, at_least: int = 0) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        raw = os.pread(self._fd, _SEQ_WIDTH, 0).strip()
        stored = int(raw) if raw.isdigit() else 0  # damaged: the spool's number decides
        self._last = max(stored, at_least)

    @property
    def last(self) -> int:
        return self._last

    def next(self) -> int:
        self._last += 1
        os.pwrite(self._fd, b"%*d\n" % (_SEQ_WIDTH - 1, self._last), 0)
        return self._last

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
