"""Merging stored points into the windows (the start-up back-fill) and the span rules read."""

from __future__ import annotations

import asyncio
import struct
from array import array

from control_plane.ingest.backfill import _CopySink
from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.rules.parser import parse_expr
from control_plane.rules.span import needed_span

A = SeriesRef(1, "web-1", "requests_total", {"code": "200"})


def windows(seconds: float = 100.0, points: int = 1000) -> SeriesWindows:
    return SeriesWindows(window_seconds=seconds, max_points=points)


def test_merge_into_empty_window_skips_what_is_too_old() -> None:
    w = windows()
    times = [float(t) for t in range(0, 200, 10)]
    added = w.merge(A, times, [t * 2 for t in times], now=190.0)
    assert added == 11  # 90..190 are within 100 s
    assert w.points(1, 0, 1000) == [(t, t * 2) for t in times[9:]]
    assert w.select("requests_total") == [A]
    assert w.merge(A, [1.0, 2.0], [1.0, 1.0], now=190.0) == 0


def test_merge_with_live_points_keeps_order_and_the_held_value_on_ties() -> None:
    w = windows()
    w.add([(A, 50.0, 500.0), (A, 60.0, 600.0)], now=60.0)  # ingest got there first
    added = w.merge(A, [20.0, 30.0, 50.0, 55.0], [2.0, 3.0, -1.0, 5.5], now=60.0)
    assert added == 3
    assert w.points(1, 0, 100) == [
        (20.0, 2.0),
        (30.0, 3.0),
        (50.0, 500.0),
        (55.0, 5.5),
        (60.0, 600.0),
    ]
    # still appendable and bounded as before
    w.add([(A, 70.0, 7.0)], now=70.0)
    assert w.points(1, 60, 100) == [(70.0, 7.0)]


def test_merge_of_older_points_in_front_and_point_bound() -> None:
    w = windows(points=5)
    w.add([(A, 90.0, 9.0), (A, 95.0, 9.5)], now=95.0)
    w.merge(A, [60.0, 70.0, 80.0, 85.0], [6.0, 7.0, 8.0, 8.5], now=95.0)
    assert [t for t, _ in w.points(1, 0, 100)] == [70.0, 80.0, 85.0, 90.0, 95.0]


def test_needed_span_is_the_longest_range_plus_offset() -> None:
    exprs = [
        parse_expr("rate(x[5m]) / rate(x[1h])"),
        parse_expr("max_over_time(y[10m] offset 30m)"),
        parse_expr("absent(z)"),
    ]
    assert needed_span(exprs, 300.0) == 3600.0
    assert needed_span(exprs[1:], 300.0) == 2400.0
    assert needed_span(exprs[2:], 300.0) == 300.0
    assert needed_span([], 300.0) == 0.0


def _copy_stream(rows: list[tuple[int, float, float]]) -> bytes:
    out = bytearray(b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big"))
    for sid, ts, value in rows:
        us = round((ts - 946_684_800.0) * 1e6)
        out += struct.pack(">hiqiqid", 3, 8, sid, 8, us, 8, value)
    return bytes(out + b"\xff\xff")


def test_copy_sink_parses_a_binary_stream_cut_anywhere() -> None:
    rows = [(sid, 1_700_000_000.0 + k + 0.5, sid * 10.0 + k) for sid in (3, 5, 9) for k in range(7)]
    stream = _copy_stream(rows)
    for size in (1, 5, 19, 37, 38, 39, 100, len(stream)):
        got: dict[int, list[tuple[float, float]]] = {}

        def fill(sid: int, times: array[float], values: array[float], got=got) -> None:
            got.setdefault(sid, []).extend(zip(times, values, strict=True))

        sink = _CopySink(fill)
        for i in range(0, len(stream), size):
            asyncio.run(sink(stream[i : i + size]))
        sink.finish()
        assert sink.rows == len(rows)
        assert got == {sid: [(t, v) for s, t, v in rows if s == sid] for sid in (3, 5, 9)}, size
