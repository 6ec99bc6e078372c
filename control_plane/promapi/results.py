"""Evaluating a query over a snapshot and shaping Prometheus's ``data``; pure.

Values are strings as Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` writes them (``"0.5"``,
``"2"``, ``"NaN"``, ``"+Inf"``), times float seconds with millisecond precision.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from control_plane.promapi.errors import ErrorType, PromApiError, bad_data, execution
from control_plane.promapi.snapshot import Snapshot
from control_plane.rules.ast import Expr, MatrixSelector, ValueType
from control_plane.rules.evaluator import (
    EvaluationError,
    Sample,
    evaluate,
    evaluate_range,
    series_labels,
)

LabelKey = tuple[tuple[str, str], ...]
# Steps evaluated between two looks at the deadline.
_CHUNK = 64


def format_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = format(Decimal(repr(v)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _pair(t: float, v: float) -> list[Any]:
    return [t, format_value(v)]


def instant_data(
    expr: Expr, source: Snapshot, at: float, lookback_s: float, limit: int = 0
) -> dict[str, Any]:
    if isinstance(expr, MatrixSelector):
        return {"resultType": "matrix", "result": _raw_matrix(expr, source, at, limit)}
    value = _evaluate(expr, source, at, lookback_s)
    if isinstance(value, float):
        return {"resultType": "scalar", "result": _pair(at, value)}
    samples = value[:limit] if limit else value
    return {
        "resultType": "vector",
        "result": [{"metric": dict(s.labels), "value": _pair(at, s.value)} for s in samples],
    }


def range_data(
    expr: Expr,
    source: Snapshot,
    instants: Sequence[float],
    lookback_s: float,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    limit: int = 0,
) -> dict[str, Any]:
    """``expr`` at every instant (evenly spaced); one series per label set, sorted by labels.
    Evaluated a chunk of steps at a time, so a query past its deadline stops within a chunk."""
    if expr.type not in (ValueType.SCALAR, ValueType.VECTOR):
        raise bad_data(
            f'invalid expression type "{expr.type.value}" for range query, '
            "must be Scalar or instant Vector"
        )
    step = instants[1] - instants[0] if len(instants) > 1 else 1.0
    series: dict[LabelKey, tuple[dict[str, str], list[list[Any]]]] = {}
    for first in range(0, len(instants), _CHUNK):
        if deadline is not None and clock() > deadline:
            raise PromApiError(ErrorType.TIMEOUT, "query timed out in query execution")
        chunk = instants[first : first + _CHUNK]
        try:
            # Half a step past the last instant: float division then never drops it.
            end = chunk[-1] + step / 2
            part = evaluate_range(expr, source, chunk[0], end, step, lookback_s=lookback_s)
        except EvaluationError as exc:
            raise execution(str(exc)) from None
        except (ArithmeticError, ValueError) as exc:
            raise execution(f"cannot evaluate the expression: {exc}") from None
        for key, (labels, points) in part.items():
            held = series.get(key)
            if held is None:
                held = series[key] = (labels, [])
            held[1].extend(_pair(round(t, 3), v) for t, v in points)
    ordered = [series[k] for k in sorted(series)]
    if limit:
        ordered = ordered[:limit]
    return {
        "resultType": "matrix",
        "result": [{"metric": labels, "values": values} for labels, values in ordered],
    }


def _evaluate(expr: Expr, source: Snapshot, at: float, lookback_s: float) -> float | list[Sample]:
    try:
        return evaluate(expr, source, at, lookback_s=lookback_s)
    except EvaluationError as exc:
        raise execution(str(exc)) from None
    except (ArithmeticError, ValueError) as exc:
        raise execution(f"cannot evaluate the expression: {exc}") from None


def _raw_matrix(
    ms: MatrixSelector, source: Snapshot, at: float, limit: int
) -> list[dict[str, Any]]:
    """An instant query of a bare range selector: the raw points of ``(at - range, at]``."""
    end = at - ms.selector.offset_s
    found = []
    for ref in source.select(ms.selector.name, ms.selector.matchers):
        pts = source.points(ref.series_id, end - ms.range_s, end)
        if pts:
            found.append((sorted(series_labels(ref).items()), pts))
    found.sort()
    if limit:
        found = found[:limit]
    return [
        {"metric": dict(labels), "values": [_pair(round(t, 3), v) for t, v in pts]}
        for labels, pts in found
    ]
