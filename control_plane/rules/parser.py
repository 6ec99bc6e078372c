"""A recursive-descent parser for the supported PromQL subset; pure.

Grammar (binary operators by precedence climbing, lowest first: ``or``; ``and``, ``unless``;
comparisons; ``+``, ``-``; ``*``, ``/``, ``%``; all left-associative, as in PromQL)::

    expr     := unary (binop ["bool"] match unary)*
    unary    := ("-" | "+") unary | power
    power    := primary ["^" match unary]                (right-associative)
    match    := [("on" | "ignoring") labels [("group_left" | "group_right") [labels]]]
    primary  := number | "(" expr ")" | call | aggregate | selector
    selector := metric ["{" matchers "}"] ["[" duration "]"] ["offset" ["-"] duration]
    aggregate:= op [("by" | "without") labels] "(" expr ")" [("by" | "without") labels]

Keywords and aggregation operators are case-insensitive (``SUM(x) BY (job)``, ``OFFSET``),
function names are not (``Rate`` is unknown), as in Prometheus. A duration may be a number of
seconds (``[90]``, ``offset -100``). Errors are :class:`ExprError` with the offset of the token
at fault; types are checked here so that a rule that parses can always be evaluated.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TypeVar

from control_plane.query.matchers import Matcher, MatchOp
from control_plane.rules.ast import (
    SET_OPERATORS,
    Aggregate,
    AtAnchor,
    Binary,
    Call,
    Cardinality,
    Expr,
    MatrixSelector,
    NumberLiteral,
    StringLiteral,
    Subquery,
    Unary,
    ValueType,
    VectorMatching,
    VectorSelector,
    children,
)
from control_plane.rules.catalog import AGGREGATION_PARAMS, AGGREGATIONS, EXPERIMENTAL, FUNCTIONS
from control_plane.rules.durations import parse_duration
from control_plane.rules.errors import ExprError
from control_plane.rules.lexer import Tok, Token, tokenize, unquote
from control_plane.rules.regex import RegexError, compile_matcher

_CMP = ("==", "!=", ">", "<", ">=", "<=")
# Binding power of the binary operators but `^` (which is right-associative, see power()).
_PRECEDENCE = {"or": 1, "and": 2, "unless": 2, **dict.fromkeys(_CMP, 3)}
_PRECEDENCE |= {"+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5}
# Operators spelled as words (case-insensitive, as the keywords).
_WORD_OPERATORS = frozenset({*SET_OPERATORS, "atan2"})
# How deep an expression may nest (parentheses, unary operators, call arguments and the height
# of the operator tree). Prometheus sets no limit (Go's stacks grow to a gigabyte); here the
# worst shape, `a + (a + (...))`, costs the parser and evaluator about 6 Python frames a level,
# under Python's default limit of 1,000 frames shared with the caller (an aiohttp handler,
# pytest). 64 levels take under 400 frames; rules people write nest a handful of levels
# (Prometheus's own test files at most 6).
MAX_DEPTH = 64
# Keywords that cannot start an operand (a metric of that name needs `{__name__=...}`).
_KEYWORDS = frozenset(
    {"and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool", "atan2"}
    | {"offset"}
)
NAME_LABEL = "__name__"
_SPECIAL_NUMBERS = {"inf": float("inf"), "nan": float("nan")}


_Node = TypeVar("_Node", Unary, Binary, Call, Aggregate, Subquery)


def parse_expr(text: str) -> Expr:
    """Parse a rule's expression (a scalar or instant vector); raises :class:`ExprError`
    (with a position) when it is not valid."""
    expr = parse_query(text)
    experimental = _experimental_call(expr)
    if experimental is not None:
        raise ExprError(
            f"{experimental.func}() is experimental in Prometheus (behind a feature flag): "
            "a rule may not use it, a query may",
            experimental.pos,
        )
    if expr.type is ValueType.MATRIX:
        raise ExprError("a range vector cannot be the result; wrap it in a function", expr.pos)
    if expr.type is ValueType.STRING:
        raise ExprError("a string cannot be the result of a rule", expr.pos)
    return expr


def _experimental_call(expr: Expr) -> Call | None:
    if isinstance(expr, Call) and expr.func in EXPERIMENTAL:
        return expr
    return next(
        (found for c in children(expr) if (found := _experimental_call(c)) is not None), None
    )


def parse_query(text: str) -> Expr:
    """Parse any PromQL expression, range vectors and strings included (what an instant
    query may return)."""
    if not text.strip():
        raise ExprError("the expression is empty", 0)
    parser = _Parser(text, tokenize(text))
    expr = parser.expr()
    parser.expect_eof()
    return expr


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        # The height of each operator node built so far (the node is kept so its id stays
        # unique): a chain like `a + a + ... + a` parses in a loop, yet nests in the tree.
        self.heights: dict[int, tuple[Expr, int]] = {}
        # The last parenthesised operand: `(x) offset 5m` is refused, as in Prometheus.
        self.parenthesized: Expr | None = None

    # -- token helpers -------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not Tok.EOF:
            self.i += 1
        return tok

    def at(self, kind: Tok, text: str | None = None) -> bool:
        tok = self.tok
        return tok.kind is kind and (text is None or tok.text == text)

    def at_keyword(self, *words: str) -> bool:
        """Is the current token one of the (lower-case) keywords, in any case?"""
        return self.tok.kind is Tok.IDENT and self.tok.text.lower() in words

    def keyword(self) -> Token:
        """Consume a keyword, its text lower-cased (PromQL keywords are case-insensitive)."""
        tok = self.advance()
        return Token(tok.kind, tok.text.lower(), tok.pos)

    def accept(self, kind: Tok, text: str) -> bool:
        if self.at(kind, text):
            self.advance()
            return True
        return False

    def expect(self, kind: Tok, text: str | None = None) -> Token:
        if not self.at(kind, text):
            want = repr(text) if text is not None else kind.value
            raise ExprError(f"expected {want}, found {_describe(self.tok)}", self.tok.pos)
        return self.advance()

    def expect_eof(self) -> None:
        if not self.at(Tok.EOF):
            raise ExprError(f"unexpected {_describe(self.tok)}", self.tok.pos)

    def grown(self, node: _Node, *children: Expr) -> _Node:
        """``node``, once its height (1 + its tallest child's) is known to be within bounds."""
        height = 1 + max((self.heights.get(id(c), (c, 1))[1] for c in children), default=0)
        if height > MAX_DEPTH:
            raise ExprError(f"the expression nests deeper than {MAX_DEPTH} levels", node.pos)
        self.heights[id(node)] = (node, height)
        return node

    # -- grammar -------------------------------------------------------------------------

    def expr(self, min_precedence: int = 1) -> Expr:
        lhs = self.unary()
        while (precedence := self.binary_precedence()) >= min_precedence:
            op = self.keyword() if self.tok.kind is Tok.IDENT else self.advance()
            lhs = self.binary(op, lhs, partial(self.expr, precedence + 1))
        return lhs

    def binary_precedence(self) -> int:
        """The current token's binding power as a binary operator; 0 if it is none."""
        tok = self.tok
        if tok.kind is Tok.OP or (tok.kind is Tok.IDENT and tok.text.lower() in _WORD_OPERATORS):
            return _PRECEDENCE.get(tok.text.lower(), 0)
        return 0

    def unary(self) -> Expr:
        # Every nesting (parentheses, call arguments, unary operators, `^`) passes here.
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ExprError(
                    f"the expression nests deeper than {MAX_DEPTH} levels", self.tok.pos
                )
            if self.tok.kind is Tok.OP and self.tok.text in ("-", "+"):
                op = self.advance()
                operand = self.unary()
                _need_value(operand, f"unary {op.text!r}")
                if isinstance(operand, NumberLiteral):
                    value = -operand.value if op.text == "-" else operand.value
                    return NumberLiteral(value, op.pos)
                return self.grown(Unary(op.text, operand, op.pos), operand)
            return self.power()
        finally:
            self.depth -= 1

    def power(self) -> Expr:
        base = self.postfix(self.primary())
        if self.at(Tok.OP, "^"):
            op = self.advance()
            return self.binary(op, base, self.unary)
        return base

    def binary(self, op: Token, lhs: Expr, operand: Callable[[], Expr]) -> Binary:
        """The operator ``op`` has been read: its modifiers, then the right operand."""
        return_bool = False
        if self.at_keyword("bool"):
            if op.text not in _CMP:
                raise ExprError(
                    "bool modifier can only be used on comparison operators", self.tok.pos
                )
            self.advance()
            return_bool = True
        match_tok, matching = self.matching(op)
        rhs = operand()
        what = f"operator {op.text!r}"
        _need_value(lhs, what)
        _need_value(rhs, what)
        vectors = lhs.type is ValueType.VECTOR and rhs.type is ValueType.VECTOR
        if op.text in SET_OPERATORS and not vectors:
            raise ExprError(
                f"set operator {op.text!r} needs an instant vector on both sides", op.pos
            )
        if match_tok is not None and not vectors:
            raise ExprError(
                "vector matching is only allowed between instant vectors", match_tok.pos
            )
        scalars = lhs.type is ValueType.SCALAR and rhs.type is ValueType.SCALAR
        if op.text in _CMP and scalars and not return_bool:
            raise ExprError("comparisons between scalars must use the bool modifier", op.pos)
        if vectors and matching is None:
            card = Cardinality.MANY_TO_MANY if op.text in SET_OPERATORS else Cardinality.ONE_TO_ONE
            matching = VectorMatching(card)
        matching = matching if vectors else None
        return self.grown(Binary(op.text, lhs, rhs, op.pos, return_bool, matching), lhs, rhs)

    def matching(self, op: Token) -> tuple[Token | None, VectorMatching | None]:
        """`on(...)`/`ignoring(...)` and `group_left/right(...)` after an operator."""
        if not self.at_keyword("on", "ignoring"):
            if self.at_keyword("group_left", "group_right"):
                raise ExprError(
                    f"{self.tok.text} needs on(...) or ignoring(...) before it", self.tok.pos
                )
            return None, None
        start = self.keyword()
        on = start.text == "on"
        labels = self.label_list()
        set_op = op.text in SET_OPERATORS
        card = Cardinality.MANY_TO_MANY if set_op else Cardinality.ONE_TO_ONE
        include: tuple[str, ...] = ()
        if self.at_keyword("group_left", "group_right"):
            group = self.keyword()
            if set_op:
                raise ExprError(f"no grouping allowed for {op.text!r}", group.pos)
            card = (
                Cardinality.MANY_TO_ONE if group.text == "group_left" else Cardinality.ONE_TO_MANY
            )
            if self.at(Tok.PUNCT, "("):
                include_pos = self.tok.pos
                include = self.label_list()
                if on:
                    both = sorted(set(include) & set(labels))
                    if both:
                        raise ExprError(
                            f"label {both[0]!r} must not be in both on(...) and {group.text}(...)",
                            include_pos,
                        )
        return start, VectorMatching(card, labels, on, include)

    def primary(self) -> Expr:
        tok = self.tok
        if tok.kind is Tok.NUMBER:
            self.advance()
            return NumberLiteral(_number(tok), tok.pos)
        if tok.kind is Tok.DURATION:  # a duration where a number goes: its seconds (`1h`)
            self.advance()
            return NumberLiteral(parse_duration(tok.text), tok.pos)
        if tok.kind is Tok.STRING:
            self.advance()
            return StringLiteral(unquote(tok), tok.pos)
        if tok.kind is Tok.PUNCT and tok.text == "(":
            self.advance()
            inner = self.expr()
            self.expect(Tok.PUNCT, ")")
            self.parenthesized = inner
            return inner
        if tok.kind is Tok.PUNCT and tok.text == "{":
            return self.selector()
        if tok.kind is not Tok.IDENT:
            raise ExprError(f"unexpected {_describe(tok)}", tok.pos)
        word = tok.text
        nxt = self.tokens[self.i + 1]
        if word.lower() in _SPECIAL_NUMBERS and not (nxt.kind is Tok.PUNCT and nxt.text in "({["):
            self.advance()
            return NumberLiteral(_SPECIAL_NUMBERS[word.lower()], tok.pos)
        if word.lower() in AGGREGATIONS and (
            (nxt.kind is Tok.PUNCT and nxt.text == "(")
            or (nxt.kind is Tok.IDENT and nxt.text.lower() in ("by", "without"))
        ):
            return self.aggregate()
        if nxt.kind is Tok.PUNCT and nxt.text == "(":
            return self.call()
        if word.lower() in _KEYWORDS:
            raise ExprError(f"unexpected keyword {word!r}", tok.pos)
        return self.selector()

    def call(self) -> Call:
        name = self.advance()
        sig = FUNCTIONS.get(name.text)
        if sig is None:
            similar = difflib.get_close_matches(name.text, FUNCTIONS, n=1)
            hint = f" (did you mean {similar[0]}?)" if similar else ""
            raise ExprError(f"unknown function {name.text!r}{hint}", name.pos)
        self.expect(Tok.PUNCT, "(")
        args: list[Expr] = []
        if not self.at(Tok.PUNCT, ")"):
            args.append(self.expr())
            while self.accept(Tok.PUNCT, ","):
                args.append(self.expr())
        close = self.expect(Tok.PUNCT, ")")
        most = len(sig.args) if not sig.variadic else len(args)
        if not sig.min_args <= len(args) <= most:
            want = f"{sig.min_args} to {most}" if sig.min_args != most else f"{most}"
            raise ExprError(f"{name.text}() takes {want} argument(s), got {len(args)}", close.pos)
        for n, arg in enumerate(args):
            want = sig.args[min(n, len(sig.args) - 1)]
            if arg.type is not want:
                raise ExprError(f"{name.text}() expects {_a(want)}, got {_a(arg.type)}", arg.pos)
        return self.grown(Call(name.text, tuple(args), name.pos, sig.returns), *args)

    def aggregate(self) -> Aggregate:
        op = self.keyword()
        grouping: tuple[str, ...] = ()
        without = False
        modifier = False
        if self.at_keyword("by", "without"):
            without = self.keyword().text == "without"
            grouping = self.label_list()
            modifier = True
        self.expect(Tok.PUNCT, "(")
        param: Expr | None = None
        param_type = AGGREGATION_PARAMS.get(op.text)
        if param_type is not None:
            param = self.expr()
            if param.type is not param_type:
                raise ExprError(
                    f"{op.text}() expects {_a(param_type)} parameter, got {_a(param.type)}",
                    param.pos,
                )
            self.expect(Tok.PUNCT, ",")
        inner = self.expr()
        if self.at(Tok.PUNCT, ","):
            raise ExprError(f"{op.text}() takes {1 + (param is not None)} arguments", self.tok.pos)
        self.expect(Tok.PUNCT, ")")
        if self.at_keyword("by", "without"):
            if modifier:
                raise ExprError("the grouping is given twice", self.tok.pos)
            without = self.keyword().text == "without"
            grouping = self.label_list()
        if inner.type is not ValueType.VECTOR:
            raise ExprError(
                f"{op.text}() expects an instant vector, got {_a(inner.type)}", inner.pos
            )
        children = (inner,) if param is None else (inner, param)
        node = Aggregate(op.text, inner, grouping, without, op.pos, param)
        return self.grown(node, *children)

    def label_list(self) -> tuple[str, ...]:
        self.expect(Tok.PUNCT, "(")
        labels: list[str] = []
        while not self.at(Tok.PUNCT, ")"):
            tok = self.expect(Tok.IDENT)
            if ":" in tok.text:
                raise ExprError(f"{tok.text!r} is not a label name", tok.pos)
            labels.append(tok.text)
            if not self.accept(Tok.PUNCT, ","):
                break
        self.expect(Tok.PUNCT, ")")
        return tuple(labels)

    def selector(self) -> VectorSelector:
        """``name``, ``name{matchers}`` or ``{matchers}`` (any name)."""
        start = self.tok
        name: str | None = None
        if start.kind is Tok.IDENT:
            name = self.advance().text
        matchers: list[Matcher] = []
        if self.accept(Tok.PUNCT, "{"):
            while not self.at(Tok.PUNCT, "}"):
                matchers.append(self.matcher())
                if not self.accept(Tok.PUNCT, ","):
                    break
            self.expect(Tok.PUNCT, "}")
        on_name = [m for m in matchers if m.label == NAME_LABEL]
        if name is not None and on_name:
            raise ExprError("the metric name must not be set twice", start.pos)
        if name is None and all(m.matches("") for m in matchers):
            raise ExprError(
                "a selector needs a metric name or a matcher that does not match the empty string",
                start.pos,
            )
        return VectorSelector(name, tuple(matchers), 0.0, start.pos)

    def postfix(self, expr: Expr) -> Expr:
        """`[range]` (a range selector), `[range:step]` (a subquery), then `offset` and `@`."""
        paren = self.parenthesized is expr
        if self.at(Tok.PUNCT, "["):
            expr = self.bracket(expr, paren)
            paren = False
        while self.at_keyword("offset") or self.at(Tok.OP, "@"):
            tok = self.tok
            if paren or not isinstance(expr, VectorSelector | MatrixSelector | Subquery):
                raise ExprError(
                    f"{tok.text!r} must follow a selector, a range selector or a subquery",
                    tok.pos,
                )
            expr = self.offset(expr) if tok.kind is Tok.IDENT else self.at_modifier(expr)
        return expr

    def bracket(self, expr: Expr, paren: bool) -> Expr:
        open_ = self.advance()
        range_tok = self.tok
        range_s = self.duration()
        if range_s <= 0:
            raise ExprError("a range must be longer than zero", range_tok.pos)
        if self.accept(Tok.PUNCT, ":"):
            step_s: float | None = None
            if not self.at(Tok.PUNCT, "]"):
                step_tok = self.tok
                step_s = self.duration()
                if step_s <= 0:
                    raise ExprError("a subquery step must be longer than zero", step_tok.pos)
            self.expect(Tok.PUNCT, "]")
            if expr.type is not ValueType.VECTOR:
                raise ExprError(
                    f"a subquery needs an instant vector, got {_a(expr.type)}", open_.pos
                )
            return self.grown(Subquery(expr, range_s, step_s, 0.0, expr.pos), expr)
        self.expect(Tok.PUNCT, "]")
        if paren or not isinstance(expr, VectorSelector) or expr.offset_s or expr.at is not None:
            raise ExprError("a range may only follow a plain vector selector", open_.pos)
        return MatrixSelector(expr, range_s, expr.pos)

    def offset(self, expr: _Modified) -> _Modified:
        tok = self.advance()
        negative = self.accept(Tok.OP, "-")
        seconds = self.duration() * (-1 if negative else 1)
        if _inner(expr).offset_s:
            raise ExprError("offset may not be set multiple times", tok.pos)
        return _with(expr, offset_s=seconds)

    def at_modifier(self, expr: _Modified) -> _Modified:
        tok = self.advance()
        at: float | AtAnchor
        if self.at_keyword("start", "end"):
            anchor = self.keyword()
            self.expect(Tok.PUNCT, "(")
            self.expect(Tok.PUNCT, ")")
            at = AtAnchor(anchor.text)
        else:
            sign = -1.0 if self.accept(Tok.OP, "-") else 1.0
            if not sign < 0:
                self.accept(Tok.OP, "+")
            num = self.tok
            if num.kind is Tok.IDENT and num.text.lower() in _SPECIAL_NUMBERS:
                at = sign * _SPECIAL_NUMBERS[self.advance().text.lower()]
            elif num.kind is Tok.DURATION:
                at = sign * parse_duration(self.advance().text)
            else:
                at = sign * _number(self.expect(Tok.NUMBER))
            if not math.isfinite(at) or abs(at) > _MAX_AT_S:
                raise ExprError("timestamp out of bounds for the @ modifier", num.pos)
            at = round(at * 1000) / 1000  # milliseconds, as Prometheus stores time
        if _inner(expr).at is not None:
            raise ExprError("@ may not be set multiple times", tok.pos)
        return _with(expr, at=at)

    def duration(self) -> float:
        """Seconds: a duration (``5m``) or a plain number of seconds (``300``)."""
        tok = self.tok
        if tok.kind is Tok.NUMBER:
            seconds = _number(self.advance())
            if not math.isfinite(seconds):
                raise ExprError("a duration must be finite", tok.pos)
            return seconds
        return parse_duration(self.expect(Tok.DURATION).text)

    def matcher(self) -> Matcher:
        label = self.expect(Tok.IDENT)
        if ":" in label.text:
            raise ExprError(f"{label.text!r} is not a label name", label.pos)
        op = self.tok
        if op.kind is not Tok.OP or op.text not in ("=", "!=", "=~", "!~"):
            raise ExprError(f"expected a label matcher operator, found {_describe(op)}", op.pos)
        self.advance()
        value = self.expect(Tok.STRING)
        match_op = MatchOp(op.text)
        pattern = unquote(value)
        if match_op not in (MatchOp.RE, MatchOp.NRE):
            return Matcher(label.text, match_op, pattern)
        try:
            # RE2 syntax, as Prometheus reads it (the Matcher keeps the original text).
            return Matcher(label.text, match_op, pattern, compile_matcher(pattern))
        except RegexError as exc:
            raise ExprError(f"bad regular expression {pattern!r}: {exc}", value.pos) from None


_Modified = VectorSelector | MatrixSelector | Subquery
# Go's time.Time bounds in milliseconds since the epoch, as seconds.
_MAX_AT_S = 9_223_372_036_854_775.0


def _inner(expr: VectorSelector | MatrixSelector | Subquery) -> VectorSelector | Subquery:
    """The node that holds the offset and `@` (a range selector's vector selector)."""
    return expr.selector if isinstance(expr, MatrixSelector) else expr


def _with(
    expr: VectorSelector | MatrixSelector | Subquery,
    *,
    offset_s: float | None = None,
    at: float | AtAnchor | None = None,
) -> VectorSelector | MatrixSelector | Subquery:
    """``expr`` with its offset or `@` set (a range selector's on its vector selector)."""
    if isinstance(expr, MatrixSelector):
        sel = expr.selector
        inner = replace(
            sel,
            offset_s=sel.offset_s if offset_s is None else offset_s,
            at=sel.at if at is None else at,
        )
        return replace(expr, selector=inner)
    return replace(
        expr,
        offset_s=expr.offset_s if offset_s is None else offset_s,
        at=expr.at if at is None else at,
    )


def _need_value(expr: Expr, what: str) -> None:
    if expr.type is ValueType.MATRIX:
        raise ExprError(f"{what} needs a scalar or instant vector, got a range vector", expr.pos)


def _a(kind: ValueType) -> str:
    return f"an {kind.value}" if kind.value[0] in "aeiou" else f"a {kind.value}"


def _number(tok: Token) -> float:
    text = tok.text
    if text[:2].lower() == "0x":
        return float(int(text, 16))
    return float(text)


def _describe(tok: Token) -> str:
    if tok.kind is Tok.EOF:
        return "end of expression"
    return f"{tok.kind.value} {tok.text!r}"
