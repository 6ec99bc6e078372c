"""The expression tree: immutable values the parser builds and the evaluator walks; pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from control_plane.query.matchers import Matcher


class ValueType(StrEnum):
    SCALAR = "scalar"
    VECTOR = "instant vector"
    MATRIX = "range vector"
    STRING = "string"


class AtAnchor(StrEnum):
    """``@ start()`` / ``@ end()``: the query's bounds (for an instant query, its time)."""

    START = "start"
    END = "end"


@dataclass(frozen=True, slots=True)
class StringLiteral:
    value: str
    pos: int

    @property
    def type(self) -> ValueType:
        return ValueType.STRING


@dataclass(frozen=True, slots=True)
class NumberLiteral:
    value: float
    pos: int

    @property
    def type(self) -> ValueType:
        return ValueType.SCALAR


@dataclass(frozen=True, slots=True)
class VectorSelector:
    # None: any metric name (`{job="x"}`); `__name__` matchers are among ``matchers``.
    name: str | None
    matchers: tuple[Matcher, ...]
    offset_s: float
    pos: int
    # `@ <time>` (seconds) or `@ start()`/`@ end()`; None: the evaluation time.
    at: float | AtAnchor | None = None

    @property
    def type(self) -> ValueType:
        return ValueType.VECTOR


@dataclass(frozen=True, slots=True)
class MatrixSelector:
    selector: VectorSelector
    range_s: float
    pos: int

    @property
    def type(self) -> ValueType:
        return ValueType.MATRIX


@dataclass(frozen=True, slots=True)
class Subquery:
    """``expr[range:step]``: ``expr`` evaluated at every multiple of ``step_s`` in the range
    (``step_s`` None: the default evaluation interval)."""

    expr: Expr
    range_s: float
    step_s: float | None
    offset_s: float
    pos: int
    at: float | AtAnchor | None = None

    @property
    def type(self) -> ValueType:
        return ValueType.MATRIX


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    pos: int
    returns: ValueType = ValueType.VECTOR

    @property
    def type(self) -> ValueType:
        return self.returns


@dataclass(frozen=True, slots=True)
class Aggregate:
    op: str
    expr: Expr
    grouping: tuple[str, ...]
    without: bool
    pos: int
    # topk/bottomk's k, quantile's q, count_values' label name.
    param: Expr | None = None

    @property
    def type(self) -> ValueType:
        return ValueType.VECTOR


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" or "+"
    expr: Expr
    pos: int

    @property
    def type(self) -> ValueType:
        return self.expr.type


class Cardinality(StrEnum):
    ONE_TO_ONE = "one-to-one"
    MANY_TO_ONE = "many-to-one"  # group_left: the left side may have several per match
    ONE_TO_MANY = "one-to-many"  # group_right
    MANY_TO_MANY = "many-to-many"  # the set operators


@dataclass(frozen=True, slots=True)
class VectorMatching:
    """How two vectors' samples are paired: `on(labels)` or `ignoring(labels)` (the default
    is ignoring nothing but ``__name__``), and `group_left/right(include)`."""

    card: Cardinality = Cardinality.ONE_TO_ONE
    labels: tuple[str, ...] = ()
    on: bool = False
    # Labels copied from the "one" side into the result (group_left/right's list).
    include: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    lhs: Expr
    rhs: Expr
    pos: int
    # `> bool`: a comparison answers 0 or 1 instead of filtering.
    return_bool: bool = False
    # None when a side is a scalar.
    matching: VectorMatching | None = None

    @property
    def type(self) -> ValueType:
        if self.lhs.type is ValueType.SCALAR and self.rhs.type is ValueType.SCALAR:
            return ValueType.SCALAR
        return ValueType.VECTOR

    @property
    def is_comparison(self) -> bool:
        return self.op in COMPARISONS

    @property
    def is_set_operator(self) -> bool:
        return self.op in SET_OPERATORS


@dataclass(frozen=True, slots=True, eq=False)
class Precomputed:
    """Not parsed: an instant-vector subtree's values at every instant of a range query,
    computed in one pass over each series (:mod:`.range_eval`); the evaluator reads the
    vector of the instant it evaluates."""

    by_time: Mapping[float, Any]
    pos: int

    @property
    def type(self) -> ValueType:
        return ValueType.VECTOR


Expr = (
    NumberLiteral
    | StringLiteral
    | VectorSelector
    | MatrixSelector
    | Subquery
    | Call
    | Aggregate
    | Unary
    | Binary
    | Precomputed
)

COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})
SET_OPERATORS = frozenset({"and", "or", "unless"})


def children(expr: Expr) -> tuple[Expr, ...]:
    """The operands of ``expr`` (a range selector's vector selector, a call's arguments)."""
    if isinstance(expr, MatrixSelector):
        return (expr.selector,)
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, Aggregate):
        return (expr.expr,) if expr.param is None else (expr.param, expr.expr)
    if isinstance(expr, Unary | Subquery):
        return (expr.expr,)
    if isinstance(expr, Binary):
        return (expr.lhs, expr.rhs)
    return ()
