"""Binary operators: scalar and vector arithmetic and comparisons with Go's float answers,
and vector matching between two instant vectors (:mod:`.matching`); pure."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

from control_plane.rules.ast import Binary, VectorMatching
from control_plane.rules.matching import MatchingError, match_pairs, set_operation
from control_plane.rules.values import (
    NAME_LABEL,
    EvaluationError,
    Sample,
    Value,
    Vector,
    dropped,
    unique,
)


def _pow(a: float, b: float) -> float:
    """Go's ``math.Pow``: where Python's raises, Go answers an infinity or NaN."""
    odd = b.is_integer() and b % 2 == 1
    try:
        return math.pow(a, b)
    except OverflowError:
        return -math.inf if a < 0 and odd else math.inf
    except ValueError:
        if a == 0:  # zero to a negative power; -0 to an odd one is -Inf
            return -math.inf if odd and math.copysign(1.0, a) < 0 else math.inf
        return math.nan  # a negative base to a fractional power


def _div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _mod(a: float, b: float) -> float:
    """Go's ``math.Mod``: NaN for an infinite dividend, a zero or NaN divisor (Python's fmod
    raises on an infinite dividend); the dividend itself for an infinite divisor."""
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.fmod(a, b)


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _div,
    "%": _mod,
    "^": _pow,
    "atan2": math.atan2,
}
_CMP: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}


def binary(b: Binary, lhs: Value, rhs: Value) -> Value:
    """The value of ``b`` given the values of its operands."""
    if isinstance(lhs, float) and isinstance(rhs, float):
        if b.is_comparison:
            return 1.0 if _CMP[b.op](lhs, rhs) else 0.0
        return _ARITH[b.op](lhs, rhs)
    if isinstance(lhs, list) and isinstance(rhs, list):
        return vector_vector(b, lhs, rhs)
    if isinstance(lhs, list):
        assert isinstance(rhs, float)
        return unique(vector_scalar(b, lhs, rhs, scalar_left=False))
    assert isinstance(rhs, list) and isinstance(lhs, float)
    return unique(vector_scalar(b, rhs, lhs, scalar_left=True))


def vector_scalar(b: Binary, vec: Vector, scalar: float, *, scalar_left: bool) -> Vector:
    out = []
    for s in vec:
        a, c = (scalar, s.value) if scalar_left else (s.value, scalar)
        if b.is_comparison:
            hit = _CMP[b.op](a, c)
            if b.return_bool:
                out.append(dropped(s.labels, 1.0 if hit else 0.0))
            elif hit:
                out.append(s)  # filtering keeps the vector's own sample, name included
        else:
            out.append(dropped(s.labels, _ARITH[b.op](a, c)))
    return out


def vector_vector(b: Binary, lhs: Vector, rhs: Vector) -> Vector:
    matching = b.matching or VectorMatching()
    if b.is_set_operator:
        return set_operation(b.op, matching, lhs, rhs)
    try:
        pairs = match_pairs(b.op, matching, lhs, rhs)
    except MatchingError as exc:
        raise EvaluationError(str(exc)) from exc
    out = []
    for left, right, labels in pairs:
        if b.is_comparison:
            hit = _CMP[b.op](left.value, right.value)
            if b.return_bool:
                labels.pop(NAME_LABEL, None)
                out.append(Sample(labels, 1.0 if hit else 0.0))
            elif hit:
                # Filtering keeps the left-hand value (Prometheus: even under group_right).
                out.append(Sample(labels, left.value, left.drop_name))
        else:
            out.append(Sample(labels, _ARITH[b.op](left.value, right.value)))
    return out
