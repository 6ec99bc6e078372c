"""The outbox row's payload: one commit's newly stored samples, compact and pure.

Layout (little-endian): ``n`` and ``runs`` (uint32 each), series ids (int64 x n), values
(float64 x n), then the times run-length coded: run lengths (uint32 x runs) and instants
(float64 unix seconds x runs). A report's samples mostly share one instant, so a sample costs
~16 bytes.
"""

from __future__ import annotations

import itertools
import operator
import struct
import sys
from array import array
from collections.abc import Sequence
from typing import NamedTuple

from control_plane.ingest.batch import PreparedReport

_HEAD = struct.Struct("<II")
_SERIES_ID = operator.itemgetter(0)
_VALUE = operator.itemgetter(2)
_BIG_ENDIAN = sys.byteorder == "big"


class Samples(NamedTuple):
    series_ids: array[int]
    times: array[float]
    values: array[float]


class PayloadError(ValueError):
    """A payload that does not decode (never written by :func:`encode`)."""


def encode(new: Sequence[PreparedReport]) -> tuple[int, bytes]:
    """(sample count, payload) of the samples a commit newly stored. Runs inside the commit's
    transaction, so it is kept to C-level loops (~0.2 µs a sample)."""
    records = list(itertools.chain.from_iterable(p.records for p in new))
    sids = array("q", map(_SERIES_ID, records))
    values = array("d", map(_VALUE, records))
    run_lengths = array("I")
    run_times = array("d")
    for p in new:
        times = p.times
        if not times:
            continue
        if min(times) == max(times):  # the usual report: one instant
            run_times.append(times[0])
            run_lengths.append(len(times))
            continue
        for t, same in itertools.groupby(times):
            run_times.append(t)
            run_lengths.append(sum(1 for _ in same))
    if _BIG_ENDIAN:  # pragma: no cover - the format is little-endian
        for a in (sids, values, run_lengths, run_times):
            a.byteswap()
    head = _HEAD.pack(len(sids), len(run_times))
    return len(sids), b"".join((head, sids, values, run_lengths, run_times))


def decode(payload: bytes) -> Samples:
    try:
        n, runs = _HEAD.unpack_from(payload)
    except struct.error as exc:
        raise PayloadError("payload too short") from exc
    if len(payload) != _HEAD.size + 16 * n + 12 * runs:
        raise PayloadError("payload length does not match its counts")
    view = memoryview(payload)
    at = _HEAD.size
    sids, values, run_lengths, run_times = array("q"), array("d"), array("I"), array("d")
    for a, size in ((sids, 8 * n), (values, 8 * n), (run_lengths, 4 * runs), (run_times, 8 * runs)):
        a.frombytes(view[at : at + size])
        at += size
    if _BIG_ENDIAN:  # pragma: no cover
        for a in (sids, values, run_lengths, run_times):
            a.byteswap()
    if sum(run_lengths) != n:
        raise PayloadError("payload runs do not cover its samples")
    times = array("d")
    for t, count in zip(run_times, run_lengths, strict=True):
        times.extend(array("d", (t,)) * count)
    return Samples(sids, times, values)
