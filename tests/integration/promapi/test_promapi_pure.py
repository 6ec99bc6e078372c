"""The API's pure parts: value formatting as Go writes floats, the spans selectors read, the
snapshot source, and an engine that answers from the ingest windows without PostgreSQL."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from control_plane.config import PromApiConfig
from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.promapi.engine import QueryEngine, parse
from control_plane.promapi.params import RangeQuery
from control_plane.promapi.results import format_value
from control_plane.promapi.snapshot import Snapshot, selector_needs
from control_plane.rules.ast import VectorSelector


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.5, "0.5"),
        (2.0, "2"),
        (-0.0, "-0"),
        (1e-05, "0.00001"),
        (1e21, "1000000000000000000000"),
        (0.1 + 0.2, "0.30000000000000004"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
    ],
)
def test_values_are_written_as_go_writes_them(value: float, text: str) -> None:
    assert format_value(value) == text


def test_selector_spans_cover_ranges_offsets_at_and_subqueries() -> None:
    spans = {
        n.selector.name: n.span(1000.0, 2000.0)
        for n in selector_needs(parse("rate(a[5m] offset 1m) + b + max_over_time(c[10m:1m])"), 300)
    }
    assert spans["a"] == (1000 - 60 - 300, 2000 - 60)
    assert spans["b"] == (1000 - 300, 2000)
    assert spans["c"] == (1000 - 600 - 300, 2000)
    [pinned] = selector_needs(parse("d @ 500"), 300)
    assert pinned.span(1000.0, 2000.0) == (200, 500)
    [at_end] = selector_needs(parse("e[1m] @ end()"), 300)
    assert at_end.span(1000.0, 2000.0) == (1940, 2000)


def test_snapshot_selects_by_name_matchers_and_any_name() -> None:
    snap = Snapshot()
    snap.add(SeriesRef(1, "a1", "up", {"job": "x"}), [1.0, 2.0, 3.0], [1.0, 1.0, 0.0])
    snap.add(SeriesRef(2, "a2", "other", {"job": "x"}), [2.0], [5.0])
    snap.add(SeriesRef(1, "a1", "up", {"job": "x"}), [3.0, 4.0], [0.5, 1.0])  # union
    assert snap.points(1, 1.0, 4.0) == [(2.0, 1.0), (3.0, 0.5), (4.0, 1.0)]
    assert snap.points_held == 5
    any_name = parse('{job="x"}')
    assert isinstance(any_name, VectorSelector) and any_name.name is None
    assert [r.series_id for r in snap.select(None, any_name.matchers)] == [1, 2]
    by_name = parse('{job="x", __name__=~"o.*"}')
    assert isinstance(by_name, VectorSelector)
    assert [r.series_id for r in snap.select(None, by_name.matchers)] == [2]
    assert [r.series_id for r in snap.select("up", ())] == [1]


class _NoDatabase:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"PostgreSQL used ({name}) for a span inside the windows")


async def test_spans_inside_the_windows_are_read_from_memory() -> None:
    now = 10_000.0
    windows = SeriesWindows(window_seconds=3600, max_points=1000)
    ref = SeriesRef(7, "web-1", "reqs_total", {"code": "200"})
    windows.add(((ref, now - 600 + 10 * i, 20.0 * i) for i in range(60)), now)
    clock = iter([now - 900, *([now] * 10)]).__next__  # the engine "started" 15 min ago
    engine = QueryEngine(_NoDatabase(), windows, PromApiConfig(), clock=clock)
    data = await engine.range(
        RangeQuery("rate(reqs_total[1m])", now - 300, now - 60, 60, None, None, 0)
    )
    [series] = orjson.loads(orjson.dumps(data))["result"]  # as the route encodes it
    assert series["metric"] == {"code": "200", "agent": "web-1"}
    assert [float(v) for _, v in series["values"]] == pytest.approx([2.0] * 5)
    # Reaching before the engine started: PostgreSQL would be asked.
    with pytest.raises(AssertionError, match="PostgreSQL used"):
        await engine.instant("reqs_total[20m]", now, timeout_s=None, lookback_s=None, limit=0)
