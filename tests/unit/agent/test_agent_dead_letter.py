"""The dead-letter file: one line per refused report, with the reason; bounded and rotated."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.dead_letter import DeadLetterReason, DeadLetters


def add(dl: DeadLetters, i: int, body: bytes = b"\x1f\x8bbody") -> None:
    dl.add(
        report_id=f"r{i}",
        seq=i,
        status=422,
        reason=DeadLetterReason.UNPROCESSABLE,
        detail=f"refused {i}",
        body=body,
    )


def test_entries_keep_the_reason_and_body(tmp_path: Path) -> None:
    dl = DeadLetters(tmp_path / "dead-letter.jsonl", clock=lambda: 100.0)
    add(dl, 1)
    (entry,) = dl.entries()
    assert entry == {
        "at": 100.0,
        "report_id": "r1",
        "seq": 1,
        "status": 422,
        "reason": "unprocessable",
        "detail": "refused 1",
        "body_bytes": 6,
        "body_gzip_base64": "H4tib2R5",
    }
    assert stat.S_IMODE(os.stat(dl.path).st_mode) == 0o600


def test_the_file_is_rotated_and_bounded(tmp_path: Path) -> None:
    dl = DeadLetters(tmp_path / "dead-letter.jsonl", max_bytes=2048)
    for i in range(200):
        add(dl, i, body=b"x" * 100)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["dead-letter.jsonl", "dead-letter.jsonl.1"]
    assert all(p.stat().st_size <= 2048 for p in tmp_path.iterdir())
    seqs = [e["seq"] for e in dl.entries()]
    assert seqs == sorted(seqs) and seqs[-1] == 199  # the newest kept, oldest first


def test_a_large_body_is_summarised_not_kept(tmp_path: Path) -> None:
    dl = DeadLetters(tmp_path / "dl.jsonl", max_bytes=4096)
    add(dl, 1, body=b"x" * 2000)  # over a quarter of the file's bound
    (entry,) = dl.entries()
    assert entry["body_bytes"] == 2000 and "body_gzip_base64" not in entry


def test_reasons_by_status() -> None:
    assert DeadLetterReason.of(400) is DeadLetterReason.INVALID
    assert DeadLetterReason.of(413) is DeadLetterReason.TOO_LARGE
    assert DeadLetterReason.of(422) is DeadLetterReason.UNPROCESSABLE
    assert DeadLetterReason.of(451) is DeadLetterReason.OTHER
    with pytest.raises(ValueError):
        DeadLetters(Path("x"), max_bytes=10)
