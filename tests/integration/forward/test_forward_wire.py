"""The pure parts of remote write out: the outbox payload, grouping and packing, the wire."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from array import array

import cramjam
import pytest

from control_plane.forward import batching, payload, wire
from control_plane.ingest.batch import PreparedReport
from control_plane.ingest.decode import Report

remote_pb2 = pytest.importorskip(
    "control_plane.ingest.prompb.remote_pb2", reason="the remote write message module"
)


def prepared(rows: list[tuple[int, float, float]]) -> PreparedReport:
    report = Report("a", uuid.uuid4(), None, 0.0, [])
    p = PreparedReport(report, ("a", "r"))
    for sid, t, v in rows:
        p.records.append((sid, dt.datetime.fromtimestamp(t, dt.UTC), v))
        p.times.append(t)
    return p


def test_the_payload_round_trips_with_run_length_times() -> None:
    rows = [(1, 100.5, 1.0), (2, 100.5, -2.5), (3, 100.5, math.inf), (1, 101.0, 7.0)]
    count, body = payload.encode([prepared(rows[:3]), prepared(rows[3:])])
    assert count == 4
    assert len(body) == 8 + 16 * 4 + 12 * 2  # two runs of times
    got = payload.decode(body)
    assert list(zip(got.series_ids, got.times, got.values, strict=True)) == rows
    with pytest.raises(payload.PayloadError):
        payload.decode(body[:-1])


def decode_request(
    body: bytes,
) -> list[tuple[tuple[tuple[str, str], ...], list[tuple[int, float]]]]:
    message = remote_pb2.WriteRequest()
    message.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return [
        (
            tuple((label.name, label.value) for label in ts.labels),
            [(s.timestamp, s.value) for s in ts.samples],
        )
        for ts in message.timeseries
    ]


def samples(sids: list[int], times: list[float], values: list[float]) -> payload.Samples:
    return payload.Samples(array("q", sids), array("d", times), array("d", values))


def test_requests_carry_samples_in_commit_order_split_at_the_limit() -> None:
    # two commits; series 8 has no labels (pruned): skipped
    chunks = [
        samples([7, 9, 8], [2.0, 2.0, 2.0], [20, 90, 80]),
        samples([7, 7, 9], [1.0, 3.0, 3.0], [10, 30, 91]),
    ]
    a = (("__name__", "a"), ("x", "1"))
    b = (("__name__", "b"),)
    labels = {7: wire.encode_labels(dict(a)), 9: wire.encode_labels(dict(b))}
    requests = list(batching.requests(chunks, labels, max_samples=2))
    assert [r.samples for r in requests] == [2, 2, 1]
    assert [decode_request(r.body) for r in requests] == [
        [(a, [(2000, 20.0)]), (b, [(2000, 90.0)])],
        [(a, [(1000, 10.0)]), (a, [(3000, 30.0)])],
        [(b, [(3000, 91.0)])],
    ]


def test_labels_are_sorted_and_utf8_and_timestamps_any_int64() -> None:
    labels = {1: wire.encode_labels({"z": "é", "__name__": "m", "a": ""})}
    times_ms = [-5, 0, 1, 2**40, 2**52]
    parts: list[bytes] = []
    encoder = wire.SampleEncoder()
    n = encoder.encode([1] * 5, [t / 1000 for t in times_ms], [0.5] * 5, labels, parts)
    assert n == 5
    decoded = decode_request(wire.write_request(parts))
    assert [labels for labels, _ in decoded] == [(("__name__", "m"), ("a", ""), ("z", "é"))] * 5
    assert [s for _, s in decoded] == [[(t, 0.5)] for t in times_ms]
    # a long label value (multi-byte lengths) round-trips too
    long = {2: wire.encode_labels({"__name__": "m", "v": "x" * 20_000})}
    parts.clear()
    assert encoder.encode([2], [1.0], [2.0], long, parts) == 1
    assert decode_request(wire.write_request(parts)) == [
        ((("__name__", "m"), ("v", "x" * 20_000)), [(1000, 2.0)])
    ]
