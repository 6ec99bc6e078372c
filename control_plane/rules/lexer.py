"""Tokens of the expression language (a PromQL subset); pure.

Every token keeps its offset in the text so that errors can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from control_plane.rules.durations import DURATION
from control_plane.rules.errors import ExprError


class Tok(StrEnum):
    NUMBER = "number"
    DURATION = "duration"
    IDENT = "identifier"
    STRING = "string"
    OP = "operator"
    PUNCT = "punctuation"
    EOF = "end of expression"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Tok
    text: str
    pos: int


_SPACE = re.compile(r"(?:\s+|#[^\n]*)+")
# (`:` may follow: `[5m:1m]`, `[10:5]`, a subquery's range and step)
_DURATION = re.compile(rf"{DURATION.pattern}(?![a-zA-Z0-9_.])")
_NUMBER = re.compile(r"(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![a-zA-Z0-9_])")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_STRING = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`""")
# Longest first so that `>=` is not read as `>` then `=`.
_OPS = ("==", "!=", ">=", "<=", "=~", "!~", ">", "<", "=", "+", "-", "*", "/", "%", "^", "@")
_PUNCT = "(){}[],"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    n = len(text)
    brackets = 0  # inside `[...]` a colon separates a subquery's range from its step
    while True:
        m = _SPACE.match(text, i)
        if m:
            i = m.end()
        if i >= n:
            tokens.append(Token(Tok.EOF, "", n))
            return tokens
        ch = text[i]
        if ch.isdigit() and (m := _DURATION.match(text, i)):
            tokens.append(Token(Tok.DURATION, m[0], i))
        elif (ch.isdigit() or ch == ".") and (m := _NUMBER.match(text, i)):
            tokens.append(Token(Tok.NUMBER, m[0], i))
        elif ch == ":" and brackets:
            tokens.append(Token(Tok.PUNCT, ch, i))
            i += 1
            continue
        elif m := _IDENT.match(text, i):
            tokens.append(Token(Tok.IDENT, m[0], i))
        elif ch in "\"'`":
            m = _STRING.match(text, i)
            if m is None:
                raise ExprError("unterminated string", i)
            tokens.append(Token(Tok.STRING, m[0], i))
        elif ch in _PUNCT:
            brackets += {"[": 1, "]": -1}.get(ch, 0)
            tokens.append(Token(Tok.PUNCT, ch, i))
            i += 1
            continue
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise ExprError(f"unexpected character {ch!r}", i)
            tokens.append(Token(Tok.OP, op, i))
            i += len(op)
            continue
        i = m.end()


def unquote(token: Token) -> str:
    """The value of a STRING token (backslash escapes in quoted strings, none in backticks)."""
    body = token.text[1:-1]
    if token.text[0] == "`" or "\\" not in body:
        return body
    out = []
    chars = iter(body)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            # Unknown escapes are kept verbatim so regex escapes like \d survive.
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
        else:
            out.append(ch)
    return "".join(out)
