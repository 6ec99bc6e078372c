"""Frequency estimation for TinyLFU: a count-min sketch of 4-bit-range counters plus a doorkeeper.

Counters live in one ``bytearray`` per row, capped at 15. Aging (halving every counter once
``sample_size`` increments were seen) is done with big-integer shifts over a whole row, a few
milliseconds for a 1M-entry cache instead of a Python loop over millions of counters.
"""

from __future__ import annotations

_MAX = 15


class FrequencySketch:
    __slots__ = (
        "_door",
        "_halving_mask",
        "_mask",
        "_pending",
        "_rows",
        "_sample_size",
        "_size",
        "_width",
    )

    def __init__(self, capacity: int) -> None:
        width = 1
        while width < max(16, capacity):
            width <<= 1
        self._width = width
        self._mask = width - 1
        self._rows = [bytearray(width) for _ in range(4)]
        self._sample_size = 10 * max(16, capacity)
        self._size = 0
        self._pending: list[bytearray] = []
        self._halving_mask = int.from_bytes(b"\x7f" * width, "little")
        # Doorkeeper: keys seen once since the last reset do not touch the sketch, so the long
        # tail of one-hit wonders does not pollute the counters.
        self._door: set[int] = set()

    def _indexes(self, h: int) -> tuple[int, int, int, int]:
        # str hashes are SipHash: 64 well-mixed bits, sliced into four row indexes (cheaper than
        # four multiplicative rehashes, which dominated the cost of a hit).
        m = self._mask
        return h & m, (h >> 21) & m, (h >> 42) & m, ((h >> 11) ^ (h >> 31)) & m

    def frequency(self, key: str) -> int:
        h = hash(key)
        i0, i1, i2, i3 = self._indexes(h)
        r = self._rows
        f = min(r[0][i0], r[1][i1], r[2][i2], r[3][i3])
        return f + 1 if h in self._door else f

    def increment(self, key: str) -> None:
        h = hash(key)
        door = self._door
        if h not in door:
            door.add(h)
        else:
            m = self._mask
            r0, r1, r2, r3 = self._rows
            i = h & m
            if r0[i] < _MAX:
                r0[i] += 1
            i = (h >> 21) & m
            if r1[i] < _MAX:
                r1[i] += 1
            i = (h >> 42) & m
            if r2[i] < _MAX:
                r2[i] += 1
            i = ((h >> 11) ^ (h >> 31)) & m
            if r3[i] < _MAX:
                r3[i] += 1
        self._size += 1
        if self._pending:
            self._halve(self._pending.pop())
        elif self._size >= self._sample_size:
            self._start_reset()

    def _start_reset(self) -> None:
        # Aging is spread over four increments, one row each (about 2 ms per row at 1M
        # entries), so no single call stalls the event loop for the whole sketch.
        self._door.clear()
        self._size //= 2
        self._pending = list(self._rows[1:])
        self._halve(self._rows[0])

    def _halve(self, row: bytearray) -> None:
        halved = (int.from_bytes(row, "little") >> 1) & self._halving_mask
        row[:] = halved.to_bytes(self._width, "little")

    def reset(self) -> None:
        """Halve every counter now (tests and benchmarks; normal aging is incremental)."""
        self._start_reset()
        while self._pending:
            self._halve(self._pending.pop())
