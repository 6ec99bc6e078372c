"""The on-disk spool: order, durability across reopen, torn tails, the size bound, cleanup."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import RecordTooLarge
from agent.spool import Spool


def _spool(d: Path, *, max_bytes: int = 1 << 20, segment_bytes: int = 64 * 1024) -> Spool:
    return Spool(d, max_bytes=max_bytes, segment_bytes=segment_bytes)


def _segments(d: Path) -> list[Path]:
    return sorted(d.glob("*.seg"))


def _drain(spool: Spool) -> list[bytes]:
    out = []
    while (rec := spool.oldest()) is not None:
        out.append(rec.payload)
        spool.ack(rec)
    return out


def test_replays_in_append_order_and_ack_advances(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for i in range(5):
        spool.append(f"r{i}".encode())
    assert spool.pending_count == 5
    first_three = spool.peek(3)
    assert [r.payload for r in first_three] == [b"r0", b"r1", b"r2"]
    assert spool.peek(3) == first_three  # peeking does not consume
    spool.ack(first_three[1])  # acknowledges everything up to and including r1
    assert spool.pending_count == 3
    assert [r.payload for r in spool.peek(10)] == [b"r2", b"r3", b"r4"]
    spool.ack(first_three[0])  # stale ack: a no-op
    assert spool.pending_count == 3
    spool.close()


def test_survives_reopen_with_cursor(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for i in range(4):
        spool.append(f"r{i}".encode())
    spool.ack(spool.peek(2)[1])
    spool.close()

    reopened = _spool(tmp_path)
    assert reopened.pending_count == 2
    assert _drain(reopened) == [b"r2", b"r3"]
    reopened.append(b"r4")
    reopened.close()
    assert _drain(_spool(tmp_path)) == [b"r4"]


def test_order_holds_across_many_segments_and_reopen(tmp_path: Path) -> None:
    payloads = [os.urandom(1000) + i.to_bytes(4, "big") for i in range(60)]
    spool = _spool(tmp_path, segment_bytes=8192)
    for p in payloads[:30]:
        spool.append(p)
    assert len(_segments(tmp_path)) > 3
    spool.close()
    spool = _spool(tmp_path, segment_bytes=8192)
    for p in payloads[30:]:
        spool.append(p)
    assert spool.pending_count == 60
    assert _drain(spool) == payloads
    spool.close()


def test_torn_tail_is_ignored_and_appends_continue(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for i in range(3):
        spool.append(f"r{i}".encode())
    spool.close()
    seg = _segments(tmp_path)[-1]
    with seg.open("ab") as f:  # a crash mid-append: a header promising more than was written
        f.write(struct.pack(">II", 500, 12345) + b"partial")

    spool = _spool(tmp_path)
    assert spool.pending_count == 3
    spool.append(b"after-crash")
    spool.close()
    assert _drain(_spool(tmp_path)) == [b"r0", b"r1", b"r2", b"after-crash"]


def test_crc_mismatch_in_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.append(b"good")
    spool.append(b"damaged!")
    spool.close()
    seg = _segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))

    spool = _spool(tmp_path)
    assert [r.payload for r in spool.peek(10)] == [b"good"]
    spool.close()


def test_zeroed_tail_is_not_a_record(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.append(b"one")
    spool.close()
    with _segments(tmp_path)[-1].open("ab") as f:
        f.write(b"\0" * 64)  # preallocated space a crash left behind
    spool = _spool(tmp_path)
    assert [r.payload for r in spool.peek(10)] == [b"one"]
    spool.close()


def test_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    max_bytes = 64 * 1024
    spool = _spool(tmp_path, max_bytes=max_bytes, segment_bytes=16 * 1024)
    payloads = [i.to_bytes(4, "big") * 1024 for i in range(40)]  # 4 KiB each, 160 KiB total
    for p in payloads:
        spool.append(p)
        assert spool.disk_bytes <= max_bytes
        assert sum(s.stat().st_size for s in _segments(tmp_path)) <= max_bytes
    kept = _drain(spool)
    assert spool.dropped_total == len(payloads) - len(kept) > 0
    assert kept == payloads[-len(kept) :]  # the newest survive, still in order
    spool.close()


def test_dropping_a_segment_being_sent_keeps_ack_safe(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=64 * 1024, segment_bytes=16 * 1024)
    spool.append(b"x" * 4000)
    in_flight = spool.oldest()
    assert in_flight is not None
    for _ in range(40):
        spool.append(b"y" * 4000)
    spool.ack(in_flight)  # its segment is gone: nothing else may be acknowledged by it
    assert spool.pending_count == len(spool.peek(1000)) > 0
    spool.close()


def test_fully_acknowledged_segments_are_deleted(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=8192)
    for _ in range(20):
        spool.append(b"z" * 1500)
    assert len(_segments(tmp_path)) >= 4
    _drain(spool)
    assert len(_segments(tmp_path)) == 1  # only the segment appends still go to
    assert spool.pending_count == 0 and spool.pending_bytes == 0
    for _ in range(10):  # rolling past a fully acknowledged segment deletes it too
        spool.append(b"z" * 1500)
    _drain(spool)
    assert len(_segments(tmp_path)) == 1
    spool.close()


def test_torn_cursor_slot_falls_back_to_the_other(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for i in range(4):
        spool.append(f"r{i}".encode())
    spool.ack(spool.peek(1)[0])  # generation n: r0 acknowledged
    spool.ack(spool.peek(1)[0])  # generation n+1: r1 acknowledged
    spool.close()
    cursor = tmp_path / "cursor"
    data = bytearray(cursor.read_bytes())
    # Damage the newest slot: the previous one (r0 acknowledged) must be used.
    newest = max(range(2), key=lambda i: struct.unpack(">Q", data[i * 32 : i * 32 + 8])[0])
    data[newest * 32 + 10] ^= 0xFF
    cursor.write_bytes(bytes(data))
    assert _drain(_spool(tmp_path)) == [b"r1", b"r2", b"r3"]


def test_segment_before_cursor_left_by_a_crash_is_removed(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=4096)
    for _ in range(6):
        spool.append(b"q" * 1500)
    first = _segments(tmp_path)[0]
    saved = first.read_bytes()
    _drain(spool)
    spool.close()
    first.write_bytes(saved)  # as if the unlink after the cursor write never happened
    spool = _spool(tmp_path, segment_bytes=4096)
    assert spool.pending_count == 0
    assert not first.exists()
    spool.close()


def test_rejects_oversized_and_empty_records(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=64 * 1024, segment_bytes=16 * 1024)
    with pytest.raises(RecordTooLarge):
        spool.append(b"x" * (64 * 1024))
    with pytest.raises(ValueError):
        spool.append(b"")
    spool.append(b"x" * 20_000)  # larger than a segment, smaller than the bound: fine
    assert [len(r.payload) for r in spool.peek(5)] == [20_000]
    spool.close()


def test_files_are_private(tmp_path: Path) -> None:
    d = tmp_path / "spool"
    spool = _spool(d)
    spool.append(b"secret-ish")
    spool.close()
    assert d.stat().st_mode & 0o077 == 0
    for f in d.iterdir():
        assert f.stat().st_mode & 0o077 == 0, f


def test_empty_segment_left_by_a_crash_is_reused(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=4096)
    spool.append(b"a" * 3000)
    spool.append(b"b" * 3000)  # rolls to a second segment
    spool.close()
    (tmp_path / "00000000000000000003.seg").write_bytes(b"")  # created, never written
    spool = _spool(tmp_path, segment_bytes=4096)
    spool.append(b"c")
    spool.close()
    assert _drain(_spool(tmp_path, segment_bytes=4096)) == [b"a" * 3000, b"b" * 3000, b"c"]


def test_state_survives_a_killed_process(tmp_path: Path) -> None:
    # The writer dies without close(): appends were fsynced, the cursor sits in the page cache.
    code = (
        "import os, sys\n"
        "from agent.spool import Spool\n"
        "s = Spool(sys.argv[1], max_bytes=1 << 20, segment_bytes=4096)\n"
        "for i in range(10):\n"
        "    s.append(b'r%d' % i + b'.' * 1000)\n"
        "s.ack(s.peek(4)[3])\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    spool = _spool(tmp_path, segment_bytes=4096)
    assert [p[:2] for p in _drain(spool)] == [b"r4", b"r5", b"r6", b"r7", b"r8", b"r9"]
    spool.close()


def test_one_process_at_a_time(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from agent.spool import Spool\n"
        "from agent.errors import SpoolError\n"
        "try:\n"
        "    Spool(sys.argv[1], max_bytes=1 << 20, segment_bytes=4096)\n"
        "except SpoolError as exc:\n"
        "    print(exc)\n"
    )
    spool = _spool(tmp_path)
    held = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert "in use by another process" in held.stdout, held.stderr
    spool.close()
    free = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert free.stdout == "" and free.returncode == 0, free.stderr


def test_newest_survives_acks_and_reopen(tmp_path: Path) -> None:
    spool = _spool(tmp_path, segment_bytes=4096)
    assert spool.newest() is None
    for i in range(5):
        spool.append(f"r{i}".encode() * 300)
    _drain(spool)  # acknowledged records still tell where numbering stopped
    newest = spool.newest()
    assert newest is not None and newest.payload.startswith(b"r4")
    spool.close()
    reopened = _spool(tmp_path, segment_bytes=4096)
    again = reopened.newest()
    assert again is not None and again.payload == newest.payload
    reopened.close()
