"""Go RE2 patterns (what Prometheus's matchers use) as Python ``re`` patterns; pure.

Prometheus anchors a matcher's pattern fully and lets ``.`` match a newline
(``^(?s:pattern)$``). Python's ``re`` reads most RE2 syntax the same way; the differences
handled here:

- flags in the middle of a pattern (``((?i)pro).*``) apply to the rest of their group in RE2,
  and are an error in Python: they become a scoped group ``(?i:...)`` closed where the group
  (or the alternative) ends;
- ``\\d``, ``\\w``, ``\\s`` are ASCII in RE2; ``\\z`` is Python's ``\\Z``; ``\\Q...\\E``
  quotes literally; POSIX classes (``[[:alpha:]]``) are spelled out; ``(?<name>...)`` is
  ``(?P<name>...)``; ``$`` is the end of the text (not before a final newline);
- what RE2 refuses, Python must refuse too (so a rule that loads here also loads in
  Prometheus): look-around, back-references, possessive quantifiers, and the constructs Python
  cannot express (``\\p{...}`` classes, ``\\C``, the ``U`` flag) are errors.
"""

from __future__ import annotations

import re

_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
# RE2's Perl classes are ASCII (Python's match any Unicode digit, letter or space).
_PERL_CLASSES = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "w": "[0-9A-Za-z_]",
    "W": "[^0-9A-Za-z_]",
    "s": "[\\t\\n\\f\\r ]",
    "S": "[^\\t\\n\\f\\r ]",
}
_FLAGS = re.compile(r"\(\?([imsU]*(?:-[imsU]*)?)(\)|:)")
_NAMED = re.compile(r"\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>")
_POSIX_CLASS = re.compile(r"\[:(\^?)([a-z]+):\]")


class RegexError(ValueError):
    """The pattern is not valid RE2 (or uses what Python's ``re`` cannot express)."""


def translate(pattern: str) -> str:
    """The Python ``re`` spelling of the RE2 ``pattern`` (not yet anchored)."""
    out: list[str] = []
    # Per open group, the flags set in its middle: each is a scoped group to close at its end.
    scoped: list[list[str]] = [[]]
    # Without the m flag anywhere, `$` is the end of the text (Python's also matches before a
    # final newline).
    end = "$" if re.search(r"\(\?[a-zA-Z]*m", pattern) else r"\Z"
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            piece, i = _escape(pattern, i)
        elif ch == "[":
            piece, i = _char_class(pattern, i)
        elif ch == "(":
            piece, i = _group(pattern, i, scoped)
        elif ch == ")":
            if len(scoped) == 1:
                raise RegexError("unexpected ')'")
            piece, i = ")" * len(scoped.pop()) + ")", i + 1
        elif ch == "|":
            # A flag set mid-group covers the rest of the group, every alternative included.
            flags = scoped[-1]
            piece, i = ")" * len(flags) + "|" + "".join(f"(?{f}:" for f in flags), i + 1
        elif ch in "*+?}" and pattern.startswith("+", i + 1):
            raise RegexError("possessive quantifiers are not RE2")
        else:
            piece, i = (end if ch == "$" else ch), i + 1
        out.append(piece)
    if len(scoped) > 1:
        raise RegexError("missing ')'")
    out.append(")" * len(scoped[0]))
    return "".join(out)


def compile_matcher(pattern: str) -> re.Pattern[str]:
    """The compiled matcher regex; use ``fullmatch`` (Prometheus anchors at both ends)."""
    try:
        return re.compile(translate(pattern), re.DOTALL)
    except re.error as exc:
        raise RegexError(str(exc)) from None


def _group(pattern: str, i: int, scoped: list[list[str]]) -> tuple[str, int]:
    if not pattern.startswith("(?", i):
        scoped.append([])
        return "(", i + 1
    m = _FLAGS.match(pattern, i)
    if m:
        flags = m[1]
        if "U" in flags:
            raise RegexError("the U (ungreedy) flag has no Python equivalent")
        if not flags.replace("-", ""):
            raise RegexError("missing flags in (?...)")
        if m[2] == ":":  # (?i:...) reads the same in both
            scoped.append([])
        else:  # (?i) in the middle: scoped to the rest of the enclosing group
            scoped[-1].append(flags)
        return f"(?{flags}:", m.end()
    if m := _NAMED.match(pattern, i):
        scoped.append([])
        return f"(?P<{m[1]}>", m.end()
    raise RegexError(f"unsupported group syntax {pattern[i : i + 4]!r} (RE2 has no look-around)")


def _escape(pattern: str, i: int) -> tuple[str, int]:
    if i + 1 >= len(pattern):
        raise RegexError("trailing backslash")
    nxt = pattern[i + 1]
    if nxt == "z":
        return r"\Z", i + 2
    if nxt == "Q":
        end = pattern.find(r"\E", i + 2)
        literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
        return re.escape(literal), len(pattern) if end < 0 else end + 2
    if nxt in _PERL_CLASSES:
        return _PERL_CLASSES[nxt], i + 2
    if nxt.isdigit() and nxt != "0":
        raise RegexError("back-references are not RE2")
    if nxt in "pPCZGXRK" or nxt == "N":
        raise RegexError(f"\\{nxt} is not supported here")
    return pattern[i : i + 2], i + 2


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """A bracket expression, with POSIX classes spelled out."""
    j = i + 1
    parts = ["["]
    if pattern.startswith("^", j):
        parts.append("^")
        j += 1
    if pattern.startswith("]", j):  # a leading ']' is a literal
        parts.append("\\]")
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        if pattern.startswith(("\\d", "\\w", "\\s"), j):  # a Perl class inside [...]
            piece, j = _PERL_CLASSES[pattern[j + 1]][1:-1], j + 2
        elif pattern[j] == "\\":
            if pattern[j + 1 : j + 2] in ("D", "W", "S"):
                raise RegexError(f"\\{pattern[j + 1]} inside [...] is not supported here")
            piece, j = _escape(pattern, j)
        elif m := _POSIX_CLASS.match(pattern, j):
            if m[2] not in _POSIX or m[1]:
                raise RegexError(f"unsupported POSIX class {m[0]!r}")
            piece, j = _POSIX[m[2]], m.end()
        else:
            # '[' is a literal inside a class in RE2; Python warns of nested sets.
            piece, j = ("\\[" if pattern[j] == "[" else pattern[j]), j + 1
        parts.append(piece)
    if j >= len(pattern):
        raise RegexError("missing ']'")
    return "".join(parts) + "]", j + 1
