"""The column path of range queries (rules.vectorized) against the per-step evaluator: the
same series at the same steps with the same values (sums within float rounding), over
counter resets, gaps, stale markers, NaN and values near the float limit."""

from __future__ import annotations

import math

import pytest

from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.promapi.snapshot import Snapshot
from control_plane.rules import evaluate, parse_expr
from control_plane.rules.staleness import STALE_NAN
from control_plane.rules.vectorized import evaluate_columns

START, END, STEP, LOOKBACK = 100.0, 2900.0, 13.0, 60.0
INSTANTS = [START + i * STEP for i in range(int((END - START) // STEP) + 1)]

COVERED = [
    "reqs_total",
    "reqs_total offset 30s",
    "rate(reqs_total[1m])",
    "increase(reqs_total[2m] offset 1m)",
    "delta(reqs_total[90s])",
    "sum(rate(reqs_total[1m]))",
    "sum by (job) (rate(reqs_total[1m]))",
    "avg without (instance) (reqs_total)",
    "min by (job) (delta(reqs_total[1m]))",
    "max(reqs_total)",
    "count by (job) (rate(reqs_total[1m]))",
    "avg(huge_total)",
    "sum(huge_total)",
    "sum without (job) (odd_total)",
    "min(odd_total)",
    "max(odd_total)",
    "rate(odd_total[1m])",
]
NOT_COVERED = [
    "rate(reqs_total[1m]) * 2",
    "topk(2, reqs_total)",
    "reqs_total @ 1000",
    "irate(reqs_total[1m])",
    "sum by (__name__) (reqs_total)",
    "rate({job='a'}[1m])",  # two names, the same labels once the name goes
]


def refs() -> list[tuple[SeriesRef, list[tuple[float, float]]]]:
    out = []
    for n in range(4):
        ref = SeriesRef(n, "a1", "reqs_total", {"job": "ab"[n % 2], "instance": f"i{n}"})
        points = []
        for i in range(400):
            if (i // 25) % 4 == n % 4:  # a 175 s gap, longer than the lookback
                continue
            value = (i % (90 + 17 * n)) * (1.5 + n)  # resets every 90-150 points
            points.append((i * 7.0 + n, STALE_NAN if i == 200 + n else value))
        out.append((ref, points))
    for n in range(3):
        huge = SeriesRef(10 + n, "a1", "huge_total", {"instance": f"i{n}"})
        out.append((huge, [(t, 1.7e308 - n * 1e300) for t in range(0, 3000, 10)]))
    for n, odd in enumerate((math.nan, math.inf, -math.inf, 0.1)):
        ref = SeriesRef(20 + n, "a1", "odd_total", {"job": "c", "instance": f"i{n}"})
        out.append((ref, [(float(t), odd if t % 200 else t / 3) for t in range(0, 3000, 10)]))
    other = SeriesRef(30, "a1", "other_total", {"job": "a", "instance": "i0"})
    out.append((other, [(float(t), t / 7) for t in range(0, 3000, 10)]))
    return out


def windows() -> SeriesWindows:
    w = SeriesWindows(window_seconds=10**6, max_points=10**5)
    for ref, points in refs():
        w.add([(ref, t, v) for t, v in points], 3000.0)
    return w


def snapshot() -> Snapshot:
    s = Snapshot()
    for ref, points in refs():
        s.add(ref, [t for t, _ in points], [v for _, v in points])
    return s


def per_step(text: str, source: object) -> dict[tuple[tuple[str, str], ...], list[tuple]]:
    expr = parse_expr(text)
    out: dict[tuple[tuple[str, str], ...], list[tuple]] = {}
    for t in INSTANTS:
        result = evaluate(expr, source, t, lookback_s=LOOKBACK)  # type: ignore[arg-type]
        assert isinstance(result, list)
        for s in result:
            out.setdefault(tuple(sorted(s.labels.items())), []).append((t, s.value))
    return out


def same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))


@pytest.mark.parametrize("source", [windows(), snapshot()], ids=["windows", "snapshot"])
@pytest.mark.parametrize("text", COVERED)
def test_columns_equal_the_per_step_answers(text: str, source: object) -> None:
    columns = evaluate_columns(parse_expr(text), source, INSTANTS, LOOKBACK)  # type: ignore[arg-type]
    assert columns is not None, text
    got = columns.series(INSTANTS)
    want = per_step(text, source)
    assert want, text
    assert {k: [t for t, _ in pts] for k, (_, pts) in got.items() if pts} == {
        k: [t for t, _ in pts] for k, pts in want.items()
    }
    for key, pts in want.items():
        assert all(same(v, w) for (_, v), (_, w) in zip(got[key][1], pts, strict=True)), key


@pytest.mark.parametrize("text", NOT_COVERED)
def test_other_shapes_are_left_to_the_per_step_path(text: str) -> None:
    assert evaluate_columns(parse_expr(text), windows(), INSTANTS, LOOKBACK) is None


def test_a_deadline_stops_the_column_path() -> None:
    class Deadline(Exception):
        pass

    def check() -> None:
        raise Deadline

    with pytest.raises(Deadline):
        evaluate_columns(parse_expr("rate(reqs_total[1m])"), windows(), INSTANTS, LOOKBACK, check)
