"""A bounded, crash-safe, append-only queue of byte records on disk.

Layout of the spool directory:

- ``<20-digit id>.seg``: segment files. Each starts with an 8-byte magic, then frames of
  ``length (u32 BE) | crc32 of payload (u32 BE) | payload``. Appends go to the newest segment,
  with one write and one fdatasync each.
- ``cursor``: where replay resumes, ``(segment id, offset)``. Two 32-byte slots written in turn,
  each with a generation and a CRC, so a torn cursor write leaves the previous slot valid.
  An ack writes the cursor without fsync: it survives a crash of the agent (the page cache
  does), and a machine crash can only move it back, so some delivered records are sent again,
  which the receiver's idempotency key absorbs. This saves an fsync per record.

On open, the newest segment is scanned and a torn tail (a crash mid-append) is cut off at the
last frame whose CRC checks. A fully acknowledged segment is deleted once appends have moved on
to a newer one. When the files would exceed ``max_bytes``, the oldest segments are dropped, and
their unacknowledged records are counted in ``dropped_total``.

Every public method takes a lock, so the spool may be used from worker threads
(``asyncio.to_thread``) while the event loop keeps running.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agent.errors import RecordTooLarge, SpoolError
from agent.fsutil import ensure_private_dir, fsync_dir

_MAGIC = b"HTSPOOL1"
_HEADER = len(_MAGIC)
_FRAME = struct.Struct(">II")
_SLOT = struct.Struct(">QQQI4x")  # generation, segment id, offset, crc32 of the first 24 bytes
_SUFFIX = ".seg"
_CURSOR = "cursor"
_LOCK = "lock"
# fdatasync also persists the file size (needed to read the data back) but skips mtime.
_sync = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One stored record; ``segment``/``offset``/``end`` locate it for ``ack``."""

    segment: int
    offset: int
    end: int
    payload: bytes


@dataclass(slots=True)
class _Segment:
    id: int
    path: Path
    size: int  # bytes of valid content: magic plus whole frames
    records: int
    last: int = 0  # offset of the newest frame (0: none)


class Spool:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int,
        segment_bytes: int,
        logger: logging.Logger | None = None,
    ) -> None:
        self._dir = Path(directory)
        self._max_bytes = max_bytes
        # At least four segments fit, so dropping the oldest frees at most a quarter.
        self._segment_bytes = max(min(segment_bytes, max_bytes // 4), 4096)
        self._log = logger or logging.getLogger("haetae.agent.spool")
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # the newest segment, open for appends
        self._cursor_fd: int | None = None
        self._lock_fd: int | None = None
        self._generation = 0
        self._offset = 0  # replay position inside the oldest segment
        self._head_acked = 0  # records of the oldest segment before the cursor
        self._total = 0  # bytes of all segment files
        # The newest record as written, so that sending it right after the append (the steady
        # state) reads no file: (segment id, offset, end, payload).
        self._tail: tuple[int, int, int, bytes] | None = None
        self.dropped_total = 0
        try:
            self._open()
        except OSError as exc:
            self.close()
            raise SpoolError(f"cannot open spool in {self._dir}: {exc}") from exc

    # -- public API --------------------------------------------------------------------------

    def append(self, payload: bytes) -> None:
        """Store ``payload`` durably (returns after fdatasync)."""
        if not payload:
            raise ValueError("empty records are not allowed")
        frame_len = _FRAME.size + len(payload)
        if _HEADER + frame_len > self._max_bytes:
            raise RecordTooLarge(frame_len, self._max_bytes - _HEADER)
        frame = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            try:
                active = self._segments[-1]
                if active.records and active.size + frame_len > self._segment_bytes:
                    active = self._roll()
                while self._total + frame_len > self._max_bytes and len(self._segments) > 1:
                    self._drop_head(reason="spool full")
                self._write_frame(active, frame)
            except OSError as exc:
                raise SpoolError(f"cannot append to spool in {self._dir}: {exc}") from exc

    def peek(self, n: int = 1) -> list[SpoolRecord]:
        """Up to ``n`` of the oldest unacknowledged records, oldest first."""
        with self._lock:
            try:
                return self._peek(n)
            except OSError as exc:
                raise SpoolError(f"cannot read spool in {self._dir}: {exc}") from exc

    def oldest(self) -> SpoolRecord | None:
        records = self.peek(1)
        return records[0] if records else None

    def newest(self) -> SpoolRecord | None:
        """The record appended last, acknowledged or not (None if the files hold none)."""
        with self._lock:
            for seg in reversed(self._segments):
                if seg.records:
                    try:
                        with seg.path.open("rb") as f:
                            f.seek(seg.last)
                            payload = _read_frame(f)
                    except OSError as exc:
                        raise SpoolError(f"cannot read spool in {self._dir}: {exc}") from exc
                    if payload is None:
                        return None
                    return SpoolRecord(
                        seg.id, seg.last, seg.last + _FRAME.size + len(payload), payload
                    )
            return None

    def ack(self, upto: SpoolRecord) -> None:
        """Mark ``upto`` and every record before it as delivered (no fsync: see the module
        docstring). Acknowledging a record already acknowledged or dropped does nothing."""
        with self._lock:
            try:
                self._ack(upto)
            except OSError as exc:
                raise SpoolError(f"cannot advance spool cursor in {self._dir}: {exc}") from exc

    @property
    def pending_count(self) -> int:
        with self._lock:
            return sum(s.records for s in self._segments) - self._head_acked

    @property
    def pending_bytes(self) -> int:
        with self._lock:
            tail = sum(s.size - _HEADER for s in self._segments[1:])
            return self._segments[0].size - self._offset + tail if self._segments else 0

    @property
    def disk_bytes(self) -> int:
        with self._lock:
            return self._total

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def close(self) -> None:
        with self._lock:
            if self._cursor_fd is not None:
                with contextlib.suppress(OSError):
                    _sync(self._cursor_fd)
            for fd in (self._fd, self._cursor_fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)  # closing the lock file releases the flock
            self._fd = self._cursor_fd = self._lock_fd = None

    # -- opening -----------------------------------------------------------------------------

    def _open(self) -> None:
        ensure_private_dir(self._dir)
        # Two agents sharing a state directory would interleave appends and cursors.
        self._lock_fd = os.open(self._dir / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpoolError(f"spool {self._dir} is in use by another process") from None
        ids = sorted(
            int(p.name[: -len(_SUFFIX)])
            for p in self._dir.iterdir()
            if p.name.endswith(_SUFFIX) and p.name[: -len(_SUFFIX)].isdigit()
        )
        cursor_path = self._dir / _CURSOR
        created = not cursor_path.exists()
        self._cursor_fd = os.open(cursor_path, os.O_RDWR | os.O_CREAT, 0o600)
        cursor = None if created else self._read_cursor()
        if created:
            fsync_dir(self._dir)
        if cursor is not None:
            # Segments before the cursor were fully acknowledged; a crash beat their unlink.
            for seg_id in [i for i in ids if i < cursor[0]]:
                os.unlink(self._segment_path(seg_id))
                ids.remove(seg_id)
        for i, seg_id in enumerate(ids):
            self._segments.append(self._scan(seg_id, verify=i == len(ids) - 1))
        if not self._segments:
            self._segments.append(self._create_segment(cursor[0] + 1 if cursor else 1))
        self._total = sum(s.size for s in self._segments)
        head = self._segments[0]
        offset = cursor[1] if cursor is not None and cursor[0] == head.id else _HEADER
        self._offset, self._head_acked = self._frame_boundary(head, offset)
        if cursor is None or cursor != (head.id, self._offset):
            self._write_cursor(durable=True)
        active = self._segments[-1]
        self._fd = os.open(active.path, os.O_RDWR)
        if os.pread(self._fd, _HEADER, 0) != _MAGIC:
            # Created but never written (a crash right after the create) or damaged: restart
            # it empty rather than append after a header the next open would refuse.
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, _MAGIC, 0)
            _sync(self._fd)
        elif os.fstat(self._fd).st_size != active.size:
            os.ftruncate(self._fd, active.size)  # cut the torn tail before appending after it
            _sync(self._fd)
        pending = sum(s.records for s in self._segments) - self._head_acked
        self._log.debug("spool opened: %d segments, %d pending", len(self._segments), pending)

    def _scan(self, seg_id: int, *, verify: bool) -> _Segment:
        """Count the whole frames of a segment; ``verify`` also checks every CRC (for the
        newest segment, the only one a crash can leave torn)."""
        path = self._segment_path(seg_id)
        with path.open("rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            if f.read(_HEADER) != _MAGIC:
                self._log.warning("spool segment %s has no valid header; ignoring it", path)
                return _Segment(seg_id, path, _HEADER, 0)
            size, records, last = _HEADER, 0, 0
            while True:
                head = f.read(_FRAME.size)
                if len(head) < _FRAME.size:
                    break
                length, crc = _FRAME.unpack(head)
                if length == 0:
                    break  # zeroed space after a crash, never a real record
                if size + _FRAME.size + length > file_size:
                    break
                if verify:
                    if zlib.crc32(f.read(length)) != crc:
                        break
                else:
                    f.seek(length, os.SEEK_CUR)
                last = size
                size += _FRAME.size + length
                records += 1
        if verify and size != file_size:
            self._log.warning("spool segment %s: ignoring a torn tail after byte %d", path, size)
        return _Segment(seg_id, path, size, records, last)

    def _frame_boundary(self, seg: _Segment, offset: int) -> tuple[int, int]:
        """The first frame boundary at or after ``offset`` and how many frames precede it."""
        pos, count = _HEADER, 0
        with seg.path.open("rb") as f:
            while pos < offset and pos < seg.size:
                f.seek(pos)
                (length, _) = _FRAME.unpack(f.read(_FRAME.size))
                pos += _FRAME.size + length
                count += 1
        return min(pos, seg.size), count

    # -- cursor ------------------------------------------------------------------------------

    def _read_cursor(self) -> tuple[int, int] | None:
        assert self._cursor_fd is not None
        data = os.pread(self._cursor_fd, 2 * _SLOT.size, 0)
        best: tuple[int, int, int] | None = None
        for i in range(2):
            raw = data[i * _SLOT.size : (i + 1) * _SLOT.size]
            if len(raw) < _SLOT.size:
                continue
            gen, seg, off, crc = _SLOT.unpack(raw)
            if zlib.crc32(raw[:24]) == crc and (best is None or gen > best[0]):
                best = (gen, seg, off)
        if best is None:
            self._log.warning("spool cursor unreadable: replaying from the oldest segment")
            return None
        self._generation = best[0]
        return best[1], best[2]

    def _write_cursor(self, *, durable: bool = False) -> None:
        assert self._cursor_fd is not None
        self._generation += 1
        body = struct.pack(">QQQ", self._generation, self._segments[0].id, self._offset)
        slot = _SLOT.pack(self._generation, self._segments[0].id, self._offset, zlib.crc32(body))
        os.pwrite(self._cursor_fd, slot, (self._generation % 2) * _SLOT.size)
        if durable:
            _sync(self._cursor_fd)

    # -- segments ----------------------------------------------------------------------------

    def _segment_path(self, seg_id: int) -> Path:
        return self._dir / f"{seg_id:020d}{_SUFFIX}"

    def _create_segment(self, seg_id: int) -> _Segment:
        path = self._segment_path(seg_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, _MAGIC)
            _sync(fd)
        finally:
            os.close(fd)
        fsync_dir(self._dir)
        return _Segment(seg_id, path, _HEADER, 0)

    def _roll(self) -> _Segment:
        seg = self._create_segment(self._segments[-1].id + 1)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(seg.path, os.O_RDWR)
        self._segments.append(seg)
        self._total += seg.size
        self._release_finished_head()
        return seg

    def _write_frame(self, seg: _Segment, frame: bytes) -> None:
        assert self._fd is not None
        view = memoryview(frame)
        pos = seg.size
        try:
            while view:
                n = os.pwrite(self._fd, view, pos)
                view, pos = view[n:], pos + n
            _sync(self._fd)
        except OSError:
            # Leave no partial frame behind for the next append to follow.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, seg.size)
            raise
        seg.last = seg.size
        seg.size += len(frame)
        seg.records += 1
        self._total += len(frame)
        self._tail = (seg.id, seg.last, seg.size, bytes(frame[_FRAME.size :]))

    def _drop_head(self, *, reason: str) -> None:
        head = self._segments[0]
        lost = head.records - self._head_acked
        if lost:
            self.dropped_total += lost
            self._log.warning("spool: dropped %d unsent records (%s)", lost, reason)
        self._remove_head()

    def _remove_head(self) -> None:
        """Move the cursor to the next segment, then unlink the head (cursor first: a crash in
        between leaves a segment the next open deletes, never a cursor pointing nowhere)."""
        head = self._segments.pop(0)
        self._offset, self._head_acked = _HEADER, 0
        self._write_cursor(durable=True)
        os.unlink(head.path)
        fsync_dir(self._dir)
        self._total -= head.size

    def _release_finished_head(self) -> None:
        while len(self._segments) > 1 and self._offset >= self._segments[0].size:
            self._remove_head()

    # -- replay ------------------------------------------------------------------------------

    def _peek(self, n: int) -> list[SpoolRecord]:
        if len(self._segments) == 1 and self._offset >= self._segments[0].size:
            return []  # the steady state after each delivery: no file access
        out: list[SpoolRecord] = []
        seg_index, pos = 0, self._offset
        while len(out) < n and seg_index < len(self._segments):
            seg = self._segments[seg_index]
            if pos >= seg.size:
                seg_index, pos = seg_index + 1, _HEADER
                continue
            tail = self._tail
            if tail is not None and tail[0] == seg.id and tail[1] == pos:
                out.append(SpoolRecord(seg.id, pos, tail[2], tail[3]))
                pos = tail[2]
                continue
            with seg.path.open("rb") as f:
                while len(out) < n and pos < seg.size:
                    f.seek(pos)
                    payload = _read_frame(f)
                    if payload is None:
                        if out or seg_index > 0:
                            return out  # hand out what precedes; the next peek meets it first
                        self._skip_corrupt_head()
                        return self._peek(n)
                    end = pos + _FRAME.size + len(payload)
                    out.append(SpoolRecord(seg.id, pos, end, payload))
                    pos = end
        return out

    def _skip_corrupt_head(self) -> None:
        head = self._segments[0]
        self._log.error("spool segment %s is corrupt after byte %d", head.path, self._offset)
        if len(self._segments) == 1:
            self._roll()  # appends must not continue after the damage
        self._drop_head(reason="corrupt segment")

    def _ack(self, upto: SpoolRecord) -> None:
        head = self._segments[0]
        if upto.segment < head.id or (upto.segment == head.id and upto.end <= self._offset):
            return  # already acknowledged, or dropped while it was being sent
        while self._segments[0].id < upto.segment:
            if len(self._segments) == 1:
                raise ValueError(f"record {upto.segment}:{upto.offset} is not in this spool")
            self._head_acked = self._segments[0].records
            self._offset = self._segments[0].size
            self._remove_head()
        head = self._segments[0]
        if upto.end > head.size:
            raise ValueError(f"record {upto.segment}:{upto.offset} is not in this spool")
        if upto.offset == self._offset:
            self._offset, self._head_acked = upto.end, self._head_acked + 1
        else:
            self._offset, self._head_acked = self._frame_boundary(head, upto.end)
        self._write_cursor()
        self._release_finished_head()


def _read_frame(f: BinaryIO) -> bytes | None:
    """The payload of the frame at the file position, or None if it is damaged."""
    head = f.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    length, crc = _FRAME.unpack(head)
    payload = f.read(length)
    if not length or len(payload) != length or zlib.crc32(payload) != crc:
        return None
    return payload
