"""How far back rules read: what the windows' start-up back-fill must load; pure."""

from __future__ import annotations

from collections.abc import Iterable

from control_plane.rules.ast import Expr, MatrixSelector, Subquery, VectorSelector, children


def expr_span(expr: Expr, lookback_s: float) -> float:
    """How far back from the evaluation time ``expr`` reads (range or lookback, plus offset;
    a subquery's range plus what its expression reads at the oldest of its steps). A
    selector pinned by `@` reads around that time instead, which no span from now covers."""
    if isinstance(expr, MatrixSelector):
        return expr.range_s + expr.selector.offset_s
    if isinstance(expr, VectorSelector):
        return lookback_s + expr.offset_s
    if isinstance(expr, Subquery):
        return expr.range_s + expr.offset_s + expr_span(expr.expr, lookback_s)
    return max((expr_span(c, lookback_s) for c in children(expr)), default=0.0)


def needed_span(exprs: Iterable[Expr], lookback_s: float) -> float:
    """The longest span any of the expressions reads; 0 without any."""
    return max((expr_span(e, lookback_s) for e in exprs), default=0.0)
