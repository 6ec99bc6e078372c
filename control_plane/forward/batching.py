"""Claimed outbox rows -> remote-write request bodies; pure.

Samples go out in commit order (the rows' order, then each commit's), one TimeSeries each, at
most ``max_samples`` to a request. A series' samples thus reach the store in the order they
were committed, which is time order for an agent's reports (it sends them one after the
other); samples of pruned series (no labels) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from control_plane.forward import wire
from control_plane.forward.payload import Samples


class Request(NamedTuple):
    body: bytes  # compressed WriteRequest
    samples: int


def requests(
    chunks: Iterable[Samples],
    labels: Mapping[int, bytes],
    max_samples: int,
    encoder: wire.SampleEncoder | None = None,
) -> Iterator[Request]:
    encoder = encoder or wire.SampleEncoder()
    parts: list[bytes] = []
    count = 0
    for sids, times, values in chunks:
        at = 0
        while at < len(sids):
            # At most what the request still takes (array slices are cheap copies).
            upto = min(len(sids), at + max_samples - count)
            count += encoder.encode(sids[at:upto], times[at:upto], values[at:upto], labels, parts)
            at = upto
            if count >= max_samples:
                yield Request(wire.write_request(parts), count)
                parts, count = [], 0
    if parts:
        yield Request(wire.write_request(parts), count)
