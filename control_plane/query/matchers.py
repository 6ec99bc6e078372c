"""Label matchers with Prometheus semantics: ``=``, ``!=``, ``=~``, ``!~``; pure.

A missing label matches as the empty string (so ``env=""`` selects series without ``env``), and
regexes are anchored at both ends. The ``agent`` pseudo-label stands for the series' agent id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from haetae.web.problem import invalid
from haetae.web.validation import MAX_LABEL_NAME, MAX_LABEL_VALUE

AGENT_LABEL = "agent"
# A matcher's value lands in an indexed comparison or a PostgreSQL regex: bounded like a label
# value (haetae.web.validation), with room for the name, operator and quotes.
MAX_MATCHER = MAX_LABEL_NAME + MAX_LABEL_VALUE + 8
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
# Prometheus' naming rules, shared with report decoding.
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(_LABEL_NAME)
# label, operator, then a double- or single-quoted value with backslash escapes.
_MATCHER = re.compile(
    rf"""\s*({_LABEL_NAME})\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*""",
    re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True)
class Matcher:
    label: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(cls, label: str, op: MatchOp, value: str, *, where: str = "match") -> Matcher:
        regex = None
        if op in (MatchOp.RE, MatchOp.NRE):
            try:
                regex = re.compile(value, re.DOTALL)
            except re.error as exc:
                raise invalid(where, f"bad regular expression {value!r}: {exc}") from None
        return cls(label, op, value, regex)

    def matches(self, value: str) -> bool:
        """Does a label whose value is ``value`` ("" when absent) satisfy this matcher?"""
        if self.op is MatchOp.EQ:
            return value == self.value
        if self.op is MatchOp.NE:
            return value != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(value) is not None
        return hit if self.op is MatchOp.RE else not hit

    @property
    def anchored_pattern(self) -> str:
        """The regex anchored for engines that search (PostgreSQL's ``~``)."""
        return f"^(?:{self.value})$"


def parse_matcher(text: str, *, where: str = "match") -> Matcher:
    """``path="/api"``, ``code=~"5.."``, ``env!=''`` -> Matcher."""
    if len(text) > MAX_MATCHER:
        raise invalid(where, f"a label matcher has at most {MAX_MATCHER} characters")
    if "\x00" in text:
        # PostgreSQL refuses NUL in text: it must not get that far.
        raise invalid(where, "must not contain a NUL character")
    m = _MATCHER.fullmatch(text)
    if m is None:
        raise invalid(
            where,
            f"{text[:200]!r} is not a label matcher",
            hint='label="value", label!="value", label=~"regex" or label!~"regex"',
        )
    return Matcher.build(m[1], MatchOp(m[2]), _unquote(m[3]), where=where)


def _unquote(quoted: str) -> str:
    body = quoted[1:-1]
    if "\\" not in body:
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


def matches_all(matchers: Sequence[Matcher], agent_id: str, labels: Mapping[str, str]) -> bool:
    for m in matchers:
        value = agent_id if m.label == AGENT_LABEL else labels.get(m.label, "")
        if not m.matches(value):
            return False
    return True
