"""Prometheus's staleness marker: a NaN with a fixed bit pattern that ends a series (a target
gone, a series no longer exposed); pure. A window may hold it like any value: selectors treat
a series whose latest point is the marker as absent, and range selectors leave it out."""

from __future__ import annotations

import math
import struct

_STALE_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", _STALE_BITS))[0]


def is_stale(value: float) -> bool:
    return math.isnan(value) and struct.pack("<d", value) == struct.pack("<Q", _STALE_BITS)
