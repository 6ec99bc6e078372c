"""The range matrix written at once (promapi.results) is the JSON the per-value path writes:
every value as ``format_value`` spells it (integers, -0, NaN, infinities, tiny and huge
numbers), the same times, series sorted by labels, the limit applied."""

from __future__ import annotations

import json
import math

import orjson

from control_plane.ingest.windows import SeriesRef
from control_plane.promapi.results import format_value, range_data
from control_plane.promapi.snapshot import Snapshot
from control_plane.rules import parse_expr

ODD = [0.0, -0.0, 2.0, -3.0, 0.1, 1e-05, 1.5e21, 2.0**53, 2.0**53 + 2, math.nan, math.inf]
ODD += [-math.inf, 1 / 3, -1e-300, 1e300, 123456789.125]


def snapshot() -> Snapshot:
    s = Snapshot()
    times = [float(t) for t in range(0, 1000, 10)]
    whole = [float(i * 3) for i in range(len(times))]
    s.add(SeriesRef(1, "a", "x", {"k": "whole"}), times, whole)
    odd = [ODD[i % len(ODD)] for i in range(len(times))]
    s.add(SeriesRef(2, "a", "x", {"k": "odd"}), times, odd)
    gappy = [t for t in times if (t // 100) % 3 != 1]  # 100 s holes, past the lookback
    s.add(SeriesRef(3, "a", "x", {"k": "gappy"}), gappy, [t / 7 for t in gappy])
    return s


def answer(text: str, instants: list[float], limit: int = 0) -> dict:
    """``range_data`` as a client reads it (the route encodes it with orjson)."""
    data = range_data(parse_expr(text), snapshot(), instants, 30.0, limit=limit)
    parsed: dict = json.loads(orjson.dumps(data))
    return parsed


def expected(text: str, instants: list[float]) -> list[tuple[dict[str, str], list[list]]]:
    """Per series the pairs the per-step path gives, values through ``format_value``."""
    from control_plane.rules.evaluator import evaluate_range

    got = evaluate_range(
        parse_expr(text), snapshot(), instants[0], instants[-1], 5.0, lookback_s=30.0
    )
    return [
        (labels, [[t, format_value(v)] for t, v in pts]) for _, (labels, pts) in sorted(got.items())
    ]


def test_the_matrix_json_is_what_format_value_writes() -> None:
    instants = [float(t) for t in range(50, 995, 5)]
    for text in ("x", "rate(x[1m])", "sum by (k) (x)", "max(x)"):
        parsed = answer(text, instants)
        have = [(r["metric"], r["values"]) for r in parsed["result"]]
        assert have == expected(text, instants), text
    # Each odd value comes back spelled as format_value spells it.
    data = json.loads(
        orjson.dumps(range_data(parse_expr('x{k="odd"}'), snapshot(), instants, 30.0))
    )
    spelled = {v for _, v in data["result"][0]["values"]}
    assert spelled == {format_value(v) for v in ODD}
    assert {"-0", "0", "0.00001", "1500000000000000000000", "NaN", "-Inf"} <= spelled


def test_the_limit_keeps_the_first_series_by_labels() -> None:
    instants = [float(t) for t in range(50, 995, 5)]
    data = json.loads(
        orjson.dumps(range_data(parse_expr("x"), snapshot(), instants, 30.0, limit=2))
    )
    assert [r["metric"]["k"] for r in data["result"]] == ["gappy", "odd"]


def test_a_snapshot_orders_points_it_is_given_out_of_order() -> None:
    s = Snapshot()
    ref = SeriesRef(9, "a", "y", {})
    s.add(ref, [30.0, 10.0, 20.0, 10.0], [3.0, 1.0, 2.0, 1.5])
    assert s.points(9, 0.0, 100.0) == [(10.0, 1.5), (20.0, 2.0), (30.0, 3.0)]
    times, values = s.arrays(9)
    assert times.tolist() == [10.0, 20.0, 30.0] and values.tolist() == [1.5, 2.0, 3.0]
    s.add(ref, [40.0, 25.0], [4.0, 2.5])  # met again: the union, in order
    assert [t for t, _ in s.points(9, 0.0, 100.0)] == [10.0, 20.0, 25.0, 30.0, 40.0]
    assert s.points_held == 5


def test_values_of_every_magnitude_are_spelled_as_format_value_spells_them() -> None:
    import numpy as np

    from control_plane.promapi.results import _pairs, _template

    rng = np.random.default_rng(12)
    scales = 10.0 ** rng.integers(-320, 308, 4000)
    values = rng.standard_normal(4000) * scales
    values[::7] = np.round(values[::7])  # whole numbers among the rest, big ones too
    values[::11] = 2.0**53 + rng.integers(0, 10**6, len(values[::11]))
    times = [str(float(t)) for t in range(len(values))]
    parsed = json.loads(_pairs(_template(times), values))
    assert [v for _, v in parsed] == [format_value(v) for v in values.tolist()]
