"""Prometheus remote write 1.0 on the wire: a snappy-compressed (block format) protobuf
``WriteRequest``; pure.

Encoded by hand rather than through protobuf message objects (which cost several µs a
sample in Python): the bytes around each distinct instant and each series' labels are built
once, so a sample costs one ``struct.pack`` and a few list appends.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

import cramjam

CONTENT_TYPE = "application/x-protobuf"
CONTENT_ENCODING = "snappy"
VERSION = "0.1.0"
HEADERS = {
    "Content-Type": CONTENT_TYPE,
    "Content-Encoding": CONTENT_ENCODING,
    "X-Prometheus-Remote-Write-Version": VERSION,
}
_DOUBLE = struct.Struct("<d")
# Field tags: WriteRequest.timeseries (1, bytes); TimeSeries.labels (1), .samples (2);
# Label.name (1), .value (2); Sample.value (1, fixed64), .timestamp (2, varint).
_TS = b"\x0a"
_LABEL = b"\x0a"
_SAMPLE = b"\x12"
_NAME = b"\x0a"
_VALUE = b"\x12"
_SAMPLE_VALUE = b"\x09"
_SAMPLE_TIME = b"\x10"


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 two's complement, as protobuf encodes negative int64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [varint(i) for i in range(1 << 14)]


def _len(n: int) -> bytes:
    return _SMALL[n] if n < len(_SMALL) else varint(n)


def _field(tag: bytes, data: bytes) -> bytes:
    return tag + _len(len(data)) + data


def encode_labels(labels: Mapping[str, str]) -> bytes:
    """The ``labels`` fields of a TimeSeries (sorted by name, as receivers expect)."""
    parts = []
    for name in sorted(labels):
        n, v = name.encode(), labels[name].encode()
        label = b"".join((_NAME, _len(len(n)), n, _VALUE, _len(len(v)), v))
        parts.append(_LABEL + _len(len(label)) + label)
    return b"".join(parts)


class SampleEncoder:
    """Encodes samples as TimeSeries messages of one sample each, as Prometheus' own remote
    write does (receivers accept a series' samples spread over several TimeSeries). Remembers
    the bytes around each distinct instant and each series' head (tag, length, labels): a
    sample then costs two dict lookups, one ``struct.pack`` and four appends."""

    def __init__(self, max_cached: int = 200_000) -> None:
        self._max = max_cached
        # unix seconds -> (sample tag + length + value tag, timestamp field, sample length)
        self._stamps: dict[float, tuple[bytes, bytes, int]] = {}
        # series id -> (the sample length it was encoded for, TimeSeries tag + length + labels)
        self._heads: dict[int, tuple[int, bytes]] = {}

    def encode(
        self,
        series_ids: Sequence[int],
        times: Sequence[float],
        values: Sequence[float],
        labels: Mapping[int, bytes],
        out: list[bytes],
    ) -> int:
        """Appends the TimeSeries of every sample whose series is in ``labels`` to ``out``;
        returns how many were encoded."""
        stamps, heads = self._stamps, self._heads
        if len(stamps) > self._max:
            stamps.clear()
        if len(heads) > self._max:
            heads.clear()
        add = out.append
        pack = _DOUBLE.pack
        encoded = 0
        for sid, t, v in zip(series_ids, times, values, strict=True):
            stamp = stamps.get(t)
            if stamp is None:
                stamp = stamps[t] = _stamp(t)
            head = heads.get(sid)
            if head is None or head[0] != stamp[2]:
                lab = labels.get(sid)
                if lab is None:
                    continue
                head = heads[sid] = (stamp[2], _TS + _len(len(lab) + stamp[2]) + lab)
            add(head[1])
            add(stamp[0])
            add(pack(v))
            add(stamp[1])
            encoded += 1
        return encoded


def _stamp(t: float) -> tuple[bytes, bytes, int]:
    """The bytes of a Sample around its value, for unix time ``t`` (seconds; sent in ms)."""
    stamp = _SAMPLE_TIME + varint(round(t * 1000))
    body = 9 + len(stamp)  # value tag + 8 bytes, then the timestamp field
    before = _SAMPLE + varint(body) + _SAMPLE_VALUE
    return before, stamp, len(before) - 1 + body


def write_request(series: Iterable[bytes]) -> bytes:
    """The compressed body of a WriteRequest made of encoded TimeSeries messages."""
    return bytes(cramjam.snappy.compress_raw(b"".join(series)))
