"""Prometheus remote write 1.0 on the wire: a snappy-compressed (block format) protobuf
``WriteRequest``; pure.

Encoded by hand rather than through protobuf message objects: a sample is a 2-field message
whose timestamp bytes repeat across a batch (a report's samples share one instant), so the
bytes of each distinct instant are built once and a sample costs one ``struct.pack`` and one
join. The label set of a series is encoded once and cached by the caller.
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


def _field(tag: bytes, data: bytes) -> bytes:
    return tag + varint(len(data)) + data


def encode_labels(labels: Mapping[str, str]) -> bytes:
    """The ``labels`` fields of a TimeSeries (sorted by name, as receivers expect)."""
    parts = []
    for name in sorted(labels):
        label = _field(_NAME, name.encode()) + _field(_VALUE, labels[name].encode())
        parts.append(_field(_LABEL, label))
    return b"".join(parts)


class SeriesEncoder:
    """Builds TimeSeries messages; remembers the bytes around each distinct timestamp."""

    def __init__(self) -> None:
        self._around: dict[int, tuple[bytes, bytes]] = {}

    def series(self, labels: bytes, times_ms: Sequence[int], values: Sequence[float]) -> bytes:
        around = self._around
        pack = _DOUBLE.pack
        parts = [labels]
        add = parts.append
        for t, v in zip(times_ms, values, strict=True):
            pair = around.get(t)
            if pair is None:
                if len(around) > 100_000:
                    around.clear()
                stamp = _SAMPLE_TIME + varint(t)
                pair = around[t] = (_SAMPLE + varint(9 + len(stamp)) + _SAMPLE_VALUE, stamp)
            add(pair[0])
            add(pack(v))
            add(pair[1])
        return _field(_TS, b"".join(parts))


def write_request(series: Iterable[bytes]) -> bytes:
    """The compressed body of a WriteRequest made of encoded TimeSeries messages."""
    return bytes(cramjam.snappy.compress_raw(b"".join(series)))
