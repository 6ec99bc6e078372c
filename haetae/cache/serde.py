"""The L2 wire format: one format-version byte, a kind byte, the fresh-until time, orjson.

``b"\\x01" kind fresh_until(float64 BE) payload``: the version byte lets a later format coexist
with this one during a rolling deploy (an unknown version reads as a miss, never as garbage).
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

FORMAT_VERSION = 1
KIND_VALUE = 0
KIND_ABSENT = 1  # negative-cache marker: the loader said the key has no value

_HEADER = struct.Struct(">BBd")
HEADER_SIZE = _HEADER.size


class Decoded:
    __slots__ = ("fresh_until", "negative", "size", "value")

    def __init__(self, value: Any, fresh_until: float, negative: bool, size: int) -> None:
        self.value = value
        self.fresh_until = fresh_until
        self.negative = negative
        self.size = size


def encode(value: Any, fresh_until: float, *, negative: bool = False) -> bytes:
    kind = KIND_ABSENT if negative else KIND_VALUE
    payload = b"" if negative else orjson.dumps(value)
    return _HEADER.pack(FORMAT_VERSION, kind, fresh_until) + payload


def decode(raw: bytes) -> Decoded | None:
    """The stored record, or None for a record this version cannot read (treated as a miss)."""
    if len(raw) < HEADER_SIZE:
        return None
    version, kind, fresh_until = _HEADER.unpack_from(raw)
    if version != FORMAT_VERSION or kind not in (KIND_VALUE, KIND_ABSENT):
        return None
    if kind == KIND_ABSENT:
        return Decoded(None, fresh_until, True, len(raw))
    try:
        value = orjson.loads(memoryview(raw)[HEADER_SIZE:])
    except orjson.JSONDecodeError:
        return None
    return Decoded(value, fresh_until, False, len(raw))
