"""Replication pieces that need no server: the entry codec and the windows' merge-add."""

from __future__ import annotations

import datetime as dt
import uuid

from control_plane.ingest.batch import prepare
from control_plane.ingest.decode import Report, Sample
from control_plane.ingest.replicate import decode, encode
from control_plane.ingest.windows import SeriesRef, SeriesWindows

REF = SeriesRef(7, "a1", "x", {"k": "v"})
OTHER = SeriesRef(8, "a1", "y", {})


def windows() -> SeriesWindows:
    return SeriesWindows(window_seconds=3600, max_points=100)


def test_adding_the_same_samples_twice_in_any_order_is_adding_them_once() -> None:
    now = 10_000.0
    samples = [(REF, now - 30 + i, float(i)) for i in range(10)]
    once = windows()
    assert once.add(samples, now, replace=False) == 10
    twice = windows()
    assert twice.add(samples[5:], now, replace=False) == 5
    assert twice.add(reversed(samples), now, replace=False) == 5  # late ones land in place
    assert twice.add(samples, now, replace=False) == 0
    assert twice.points(7, 0, now) == once.points(7, 0, now)
    # The default (ingest) replaces a value at an instant already held.
    twice.add([(REF, now - 30, 99.0)], now)
    assert twice.points(7, now - 31, now - 30) == [(now - 30, 99.0)]
    twice.add([(REF, now - 30, 5.0)], now, replace=False)
    assert twice.points(7, now - 31, now - 30) == [(now - 30, 99.0)]  # merge: held wins


def test_an_entry_carries_the_stored_instants_and_values() -> None:
    ts = 1_800_000_000.1234567  # below a microsecond: PostgreSQL keeps whole microseconds
    report = Report(
        agent_id="a1",
        report_id=uuid.uuid4(),
        seq=1,
        collected_at=ts,
        samples=[Sample("x", {"k": "v"}, "k=v", ts, 1.5), Sample("y", {}, "", ts + 1, -2.0)],
        collectors=[],
    )
    known = {("a1", "x", "k=v"): REF, ("a1", "y", ""): OTHER}
    p = prepare(report, 0.0, known, {}, {})
    assert p.times[0] == dt.datetime.fromtimestamp(ts, dt.UTC).timestamp() != ts
    batch = encode([p])
    assert batch is not None and batch.count == 2 and batch.oldest == p.times[0]
    sids, times, values = decode({b"s": batch.sids, b"t": batch.times, b"v": batch.values})
    assert list(sids) == [7, 8]
    assert list(times) == p.times
    assert list(values) == [1.5, -2.0]
    assert encode([]) is None


def test_a_reports_shared_instant_is_sent_once() -> None:
    ts = 1_800_000_000.0
    samples = [Sample("x", {"k": str(i)}, f"k={i}", ts, float(i)) for i in range(100)]
    report = Report("a1", uuid.uuid4(), 1, ts, samples)
    known = {("a1", "x", f"k={i}"): SeriesRef(i, "a1", "x", {"k": str(i)}) for i in range(100)}
    p = prepare(report, 0.0, known, {}, {})
    batch = encode([p, p])
    assert batch is not None and batch.count == 200
    assert len(batch.times) == 4 + 2 * 16  # two runs: (length, instant) each
    _, times, values = decode({b"s": batch.sids, b"t": batch.times, b"v": batch.values})
    assert list(times) == [ts] * 200 and list(values) == [float(i) for i in range(100)] * 2
