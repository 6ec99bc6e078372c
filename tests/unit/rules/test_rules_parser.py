from __future__ import annotations

import pytest

from control_plane.query.matchers import MatchOp
from control_plane.rules.ast import Aggregate, Binary, Call, MatrixSelector, NumberLiteral, Unary
from control_plane.rules.durations import format_duration, parse_duration
from control_plane.rules.errors import ExprError
from control_plane.rules.parser import parse_expr


def test_selector_with_matchers_range_and_offset() -> None:
    expr = parse_expr("rate(http_requests_total{code=~'5..', path!=\"/health\"}[5m] offset 1h)")
    assert isinstance(expr, Call) and expr.func == "rate"
    ms = expr.args[0]
    assert isinstance(ms, MatrixSelector)
    assert ms.range_s == 300 and ms.selector.offset_s == 3600
    assert [(m.label, m.op, m.value) for m in ms.selector.matchers] == [
        ("code", MatchOp.RE, "5.."),
        ("path", MatchOp.NE, "/health"),
    ]


def test_precedence_follows_promql() -> None:
    expr = parse_expr("a + b * c > 2")
    assert isinstance(expr, Binary) and expr.op == ">"
    assert isinstance(expr.lhs, Binary) and expr.lhs.op == "+"
    assert isinstance(expr.lhs.rhs, Binary) and expr.lhs.rhs.op == "*"
    # Unary minus binds looser than ^ (as in PromQL: -2^2 is -4).
    neg = parse_expr("-x ^ 2")
    assert isinstance(neg, Unary) and isinstance(neg.expr, Binary)
    # ^ is right-associative.
    p = parse_expr("2 ^ 3 ^ 2 + x")
    assert isinstance(p, Binary) and isinstance(p.lhs, Binary) and isinstance(p.lhs.rhs, Binary)


def test_aggregation_grouping_before_or_after() -> None:
    a = parse_expr("sum by (agent, path) (x)")
    b = parse_expr("sum(x) by (agent, path)")
    assert isinstance(a, Aggregate) and isinstance(b, Aggregate)
    assert a.grouping == b.grouping == ("agent", "path")
    w = parse_expr("max without (cpu) (x)")
    assert isinstance(w, Aggregate) and w.without


def test_numbers() -> None:
    for text, value in (("1e3", 1000.0), ("0x10", 16.0), (".5", 0.5), ("-2", -2.0)):
        lit = parse_expr(f"x > {text}")
        assert isinstance(lit, Binary) and isinstance(lit.rhs, NumberLiteral)
        assert lit.rhs.value == value


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("rate(x)", 5, "expects a range vector"),
        ("x +", 3, "unexpected end of expression"),
        ('foo{a="b"', 9, "expected '}'"),
        ("1 > 2", 2, "bool modifier"),
        ("holt_winters(x[5m], 0.1, 0.1)", 0, "unknown function"),
        ("histogram_quantile(x, x)", 19, "expects a scalar"),
        ("x and 1", 2, "set operator 'and' needs an instant vector"),
        ("1 or x", 2, "set operator 'or' needs an instant vector"),
        ("x + on(a) 2", 4, "vector matching is only allowed between instant vectors"),
        ("x + bool y", 4, "bool modifier can only be used on comparison"),
        ("x and bool y", 6, "bool modifier can only be used on comparison"),
        ("x unless on(a) group_left y", 15, "no grouping allowed for 'unless'"),
        ("x * on(a) group_right(a) y", 21, "must not be in both on(...) and group_right"),
        ("x * group_left y", 4, "needs on(...) or ignoring(...)"),
        ("x * on a y", 7, "expected '('"),
        ("x * ignoring(a", 14, "expected ')'"),
        ("and y", 0, "unexpected keyword 'and'"),
        ("x[5m]", 0, "range vector cannot be the result"),
        ("x{a=~'('}", 5, "bad regular expression"),
        ("sum(x[5m])", 4, "expects an instant vector"),
        ("x @ inf", 4, "timestamp out of bounds"),
        ("x @ 5 @ 6", 6, "may not be set multiple times"),
        ("(x) offset 5m", 4, "must follow a selector"),
        ("rate(x[5m])[10m]", 11, "a range may only follow a plain vector selector"),
        ("x[5m][10m:]", 5, "unexpected punctuation '['"),
        ('x{__name__="y"}', 0, "metric name must not be set twice"),
        ("{a=''}", 0, "a selector needs a metric name or a matcher"),
        ('"text"', 0, "a string cannot be the result"),
        ("topk(x, y)", 5, "expects a scalar parameter"),
        ("x[0s]", 2, "longer than zero"),
        ("   ", 0, "empty"),
        ("x{a='unterminated}", 4, "unterminated string"),
    ],
)
def test_errors_carry_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(ExprError) as err:
        parse_expr(text)
    assert err.value.position == position, err.value
    assert fragment in err.value.detail
    assert err.value.field == "expr"


def test_durations_round_trip() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert format_duration(5400) == "1h30m"
    assert format_duration(0) == "0s"
    assert format_duration(0.25) == "250ms"
    with pytest.raises(ValueError):
        parse_duration("5 minutes")
