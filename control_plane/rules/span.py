"""How far back rules read: what the windows' start-up back-fill must load; pure."""

from __future__ import annotations

from collections.abc import Iterable

from control_plane.rules.ast import (
    Aggregate,
    Binary,
    Call,
    Expr,
    MatrixSelector,
    Unary,
    VectorSelector,
)


def expr_span(expr: Expr, lookback_s: float) -> float:
    """How far back from the evaluation time ``expr`` reads (range or lookback, plus offset)."""
    if isinstance(expr, MatrixSelector):
        return expr.range_s + expr.selector.offset_s
    if isinstance(expr, VectorSelector):
        return lookback_s + expr.offset_s
    if isinstance(expr, Call):
        return max((expr_span(a, lookback_s) for a in expr.args), default=0.0)
    if isinstance(expr, Aggregate | Unary):
        return expr_span(expr.expr, lookback_s)
    if isinstance(expr, Binary):
        return max(expr_span(expr.lhs, lookback_s), expr_span(expr.rhs, lookback_s))
    return 0.0


def needed_span(exprs: Iterable[Expr], lookback_s: float) -> float:
    """The longest span any of the expressions reads; 0 without any."""
    return max((expr_span(e, lookback_s) for e in exprs), default=0.0)
