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

import numpy as np
import numpy.typing as npt
import orjson

from control_plane.promapi.errors import ErrorType, PromApiError, bad_data, execution
from control_plane.promapi.snapshot import Snapshot
from control_plane.rules.ast import Expr, ValueType
from control_plane.rules.evaluator import (
    EvaluationError,
    evaluate,
    evaluate_range,
)
from control_plane.rules.vectorized import Columns, evaluate_columns

LabelKey = tuple[tuple[str, str], ...]


def format_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = repr(v)
    if "e" in text:  # Go writes no exponent: 1e-05 is "0.00001"
        text = format(Decimal(text), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return text[:-2] if text.endswith(".0") else text


def _pair(t: float, v: float) -> list[Any]:
    return [t, format_value(v)]


def instant_data(
    expr: Expr, source: Snapshot, at: float, lookback_s: float, limit: int = 0
) -> dict[str, Any]:
    value = _evaluate(expr, source, at, lookback_s)
    if isinstance(value, float):
        return {"resultType": "scalar", "result": _pair(at, value)}
    if isinstance(value, str):
        return {"resultType": "string", "result": [at, value]}
    if isinstance(value, tuple):  # a range vector (RangeSeries: labels, points)
        rows = sorted((sorted(r.labels.items()), r.points) for r in value)
        rows = rows[:limit] if limit else rows
        return {
            "resultType": "matrix",
            "result": [
                {"metric": dict(labels), "values": [_pair(round(t, 3), v) for t, v in pts]}
                for labels, pts in rows
            ],
        }
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
    """``expr`` at every instant; one series per label set, sorted by labels. The evaluator
    looks at the deadline every few steps, so a query past it stops soon after."""
    if expr.type not in (ValueType.SCALAR, ValueType.VECTOR):
        raise bad_data(
            f'invalid expression type "{expr.type.value}" for range query, '
            "must be Scalar or instant Vector"
        )
    start, end = instants[0], instants[-1]
    # One instant alone still needs a positive step; it never reaches a second one.
    step = instants[1] - instants[0] if len(instants) > 1 else 1.0

    def check() -> None:
        if deadline is not None and clock() > deadline:
            raise PromApiError(ErrorType.TIMEOUT, "query timed out in query execution")

    try:
        # The common shapes as column operations, their matrix written as JSON at once.
        columns = evaluate_columns(expr, source, instants, lookback_s, check)
        if columns is not None:
            return _matrix(columns, instants, limit)
        # Each series is read once for all steps (rules.range_eval), not once per step.
        evaluated = evaluate_range(
            expr, source, start, end, step, lookback_s=lookback_s, check=check
        )
    except EvaluationError as exc:
        raise execution(str(exc)) from None
    except (ArithmeticError, ValueError) as exc:
        raise execution(f"cannot evaluate the expression: {exc}") from None
    series = {
        key: (labels, [_pair(t, v) for t, v in points])
        for key, (labels, points) in evaluated.items()
    }
    ordered = [series[k] for k in sorted(series)]
    if limit:
        ordered = ordered[:limit]
    return {
        "resultType": "matrix",
        "result": [{"metric": labels, "values": values} for labels, values in ordered],
    }


def _matrix(columns: Columns, instants: Sequence[float], limit: int) -> dict[str, Any]:
    """The matrix with each series' values as one pre-encoded JSON fragment: the pairs are
    written by a printf template over the instants, which formats half a million values in
    tens of milliseconds where a call per value takes a second."""
    times = [orjson.dumps(float(t)).decode() for t in instants]  # as orjson writes `t` itself
    # Series are mostly present at the same steps (all, or all but the first): one template
    # per pattern of steps.
    templates: dict[bytes, tuple[str, str]] = {}
    order = sorted(range(len(columns.labels)), key=columns.keys().__getitem__)
    result = []
    for row in order[:limit] if limit else order:
        present = columns.present[row]
        values = columns.values[row][present]
        steps = np.packbits(present).tobytes()
        template = templates.get(steps)
        if template is None:
            kept = zip(times, present.tolist(), strict=True)
            template = templates[steps] = _template([t for t, here in kept if here])
        result.append(
            {"metric": columns.labels[row], "values": orjson.Fragment(_pairs(template, values))}
        )
    return {"resultType": "matrix", "result": result}


def _template(times: Sequence[str]) -> tuple[str, str]:
    """The pairs' printf templates for integers (``%d``) and other values (``%s``)."""
    return (
        "[" + ",".join(f'[{t},"%d"]' for t in times) + "]",
        "[" + ",".join(f'[{t},"%s"]' for t in times) + "]",
    )


def _pairs(template: tuple[str, str], values: npt.NDArray[np.float64]) -> bytes:
    """``[[t,"v"],...]`` with values as :func:`format_value` writes them."""
    with np.errstate(invalid="ignore"):
        # Whole numbers below 2**53 print as integers in Go too (-0 is not one here).
        whole = (values == np.trunc(values)) & (np.abs(values) < 2.0**53)
        whole &= ~((values == 0) & np.signbit(values))
    if whole.all():
        return (template[0] % tuple(values.astype(np.int64).tolist())).encode()
    # orjson writes a finite float as Go does (shortest digits, no exponent below 1e16); the
    # others (any whole number, NaN, infinities, exponents) as format_value spells them.
    written = orjson.dumps(values.tolist()).decode()
    texts = written[1:-1].split(",")
    with np.errstate(invalid="ignore"):
        odd = (values == np.trunc(values)) | ~np.isfinite(values)  # ("2.0", "-0.0", null)
    for i in np.flatnonzero(odd).tolist():
        texts[i] = format_value(float(values[i]))
    if "e" in written:  # ("null", "NaN" and "Inf" have none)
        texts = [
            format_value(float(v)) if "e" in t else t for t, v in zip(texts, values, strict=True)
        ]
    return (template[1] % tuple(texts)).encode()


def _evaluate(
    expr: Expr,
    source: Snapshot,
    at: float,
    lookback_s: float,
    start: float | None = None,
    end: float | None = None,
    step: float = 0.0,
) -> Any:
    """One instant: a scalar, a string, a vector or a range vector. ``start``/``end`` are the
    range query's bounds and step (for ``@ start()``, ``@ end()``, ``step()``)."""
    try:
        return evaluate(expr, source, at, lookback_s=lookback_s, start=start, end=end, step=step)
    except EvaluationError as exc:
        raise execution(str(exc)) from None
    except (ArithmeticError, ValueError) as exc:
        raise execution(f"cannot evaluate the expression: {exc}") from None
