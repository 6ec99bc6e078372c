"""An expression back to PromQL text that Prometheus 2 reads too; pure.

We accept what Prometheus 3 accepts: durations without a unit (``[90]``, ``offset 300``) and
durations where a number goes (``predict_linear(x[1h], 1h)``, ``@ 100s``). A rule file
exported for Prometheus (or checked by an older ``promtool``) needs them spelled the old way:
:func:`format_expr` prints the tree with units on every range, offset and step, and plain
numbers elsewhere. Operands that are operators are parenthesised, so the text parses back to
the same tree whatever the precedence.
"""

from __future__ import annotations

import json
import math

from control_plane.rules.ast import (
    Aggregate,
    AtAnchor,
    Binary,
    Call,
    Cardinality,
    Expr,
    MatrixSelector,
    NumberLiteral,
    Precomputed,
    StringLiteral,
    Subquery,
    Unary,
    VectorMatching,
    VectorSelector,
)
from control_plane.rules.durations import format_duration
from control_plane.rules.lexer import Tok, tokenize

_AFTER_RANGE = frozenset({"[", ":", "offset"})


def needs_rewrite(text: str) -> bool:
    """Does ``text`` use a duration form Prometheus 2 refuses (a number where a duration goes,
    a duration where a number goes)?"""
    tokens = tokenize(text)
    for n, tok in enumerate(tokens):
        prev = tokens[n - 1].text.lower() if n else ""
        if prev == "-" and n > 1 and tokens[n - 2].text.lower() == "offset":
            prev = "offset"
        if tok.kind is Tok.NUMBER and prev in _AFTER_RANGE:
            return True
        if tok.kind is Tok.DURATION and prev not in _AFTER_RANGE:
            return True
    return False


def format_expr(expr: Expr) -> str:
    if isinstance(expr, NumberLiteral):
        return _number(expr.value)
    if isinstance(expr, StringLiteral):
        return json.dumps(expr.value, ensure_ascii=False)
    if isinstance(expr, VectorSelector):
        return _selector(expr) + _modifiers(expr.offset_s, expr.at)
    if isinstance(expr, MatrixSelector):
        sel = expr.selector
        range_text = f"[{format_duration(expr.range_s)}]"
        return _selector(sel) + range_text + _modifiers(sel.offset_s, sel.at)
    if isinstance(expr, Subquery):
        step = format_duration(expr.step_s) if expr.step_s else ""
        inner = _operand(expr.expr, atomic_only=True)
        window = f"[{format_duration(expr.range_s)}:{step}]"
        return inner + window + _modifiers(expr.offset_s, expr.at)
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(format_expr(a) for a in expr.args)})"
    if isinstance(expr, Aggregate):
        grouping = ""
        if expr.without or expr.grouping:
            keyword = "without" if expr.without else "by"
            grouping = f" {keyword} ({', '.join(expr.grouping)})"
        args = [format_expr(expr.expr)]
        if expr.param is not None:
            args.insert(0, format_expr(expr.param))
        return f"{expr.op}{grouping}{' ' if grouping else ''}({', '.join(args)})"
    if isinstance(expr, Unary):
        return expr.op + _operand(expr.expr)
    if isinstance(expr, Binary):
        op = expr.op + (" bool" if expr.return_bool else "")
        matching = _matching(expr.matching)
        return f"{_operand(expr.lhs)} {op}{matching} {_operand(expr.rhs)}"
    if isinstance(expr, Precomputed):
        raise TypeError("a precomputed node has no text")
    raise TypeError(f"not an expression: {expr!r}")


def _operand(expr: Expr, *, atomic_only: bool = False) -> str:
    text = format_expr(expr)
    wrap = isinstance(expr, Binary | Unary) or (
        isinstance(expr, NumberLiteral) and text.startswith("-")
    )
    if atomic_only:
        wrap = not isinstance(expr, VectorSelector | Call | Aggregate)
        modified = isinstance(expr, VectorSelector) and (expr.offset_s != 0 or expr.at is not None)
        wrap = wrap or modified
    return f"({text})" if wrap else text


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _selector(sel: VectorSelector) -> str:
    matchers = ", ".join(f"{m.label}{m.op.value}{_quoted(m.value)}" for m in sel.matchers)
    if sel.name is None:
        return "{" + matchers + "}"
    return sel.name + ("{" + matchers + "}" if matchers else "")


def _modifiers(offset_s: float, at: float | AtAnchor | None) -> str:
    text = ""
    if offset_s:
        sign = "-" if offset_s < 0 else ""
        text += f" offset {sign}{format_duration(abs(offset_s))}"
    if isinstance(at, AtAnchor):
        text += f" @ {at.value}()"
    elif at is not None:
        text += f" @ {at:.3f}"
    return text


def _matching(matching: VectorMatching | None) -> str:
    if matching is None:
        return ""
    text = ""
    grouped = matching.card in (Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_MANY)
    if matching.on:
        text = f" on({', '.join(matching.labels)})"
    elif matching.labels or grouped:
        text = f" ignoring({', '.join(matching.labels)})"
    if grouped:
        side = "group_left" if matching.card is Cardinality.MANY_TO_ONE else "group_right"
        text += f" {side}({', '.join(matching.include)})"
    return text
