"""Claimed outbox rows -> remote-write request bodies; pure.

Samples are grouped by series (one TimeSeries each, in time order) and series are packed into
requests of at most ``max_samples`` samples; a series with more is split across consecutive
requests (in time order, so a store that refuses out-of-order samples accepts them).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from control_plane.forward import wire
from control_plane.forward.payload import Samples


class Request(NamedTuple):
    body: bytes  # compressed WriteRequest
    samples: int


class Grouped(NamedTuple):
    # series id -> (times in ms, values), in time order
    series: dict[int, tuple[list[int], list[float]]]
    samples: int


def group(chunks: Iterable[Samples]) -> Grouped:
    out: dict[int, tuple[list[int], list[float]]] = {}
    millis: dict[float, int] = {}
    n = 0
    for sids, times, values in chunks:
        n += len(sids)
        for sid, t, v in zip(sids, times, values, strict=True):
            ms = millis.get(t)
            if ms is None:
                ms = millis[t] = round(t * 1000)
            entry = out.get(sid)
            if entry is None:
                entry = out[sid] = ([], [])
            entry[0].append(ms)
            entry[1].append(v)
    for ts, vs in out.values():
        if any(a > b for a, b in itertools.pairwise(ts)):
            order = sorted(range(len(ts)), key=ts.__getitem__)
            ts[:] = [ts[i] for i in order]
            vs[:] = [vs[i] for i in order]
    return Grouped(out, n)


def requests(grouped: Grouped, labels: Mapping[int, bytes], max_samples: int) -> Iterator[Request]:
    """The request bodies for the series whose labels are known (the others are skipped)."""
    encoder = wire.SeriesEncoder()
    parts: list[bytes] = []
    count = 0
    for sid, (ts, vs) in grouped.series.items():
        encoded = labels.get(sid)
        if encoded is None:
            continue
        start = 0
        while start < len(ts):
            end = min(len(ts), start + max_samples - count)
            parts.append(encoder.series(encoded, ts[start:end], vs[start:end]))
            count += end - start
            start = end
            if count >= max_samples:
                yield Request(wire.write_request(parts), count)
                parts, count = [], 0
    if parts:
        yield Request(wire.write_request(parts), count)
