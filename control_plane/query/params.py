"""Query-string parsing for the monitoring API; pure (the clock is an argument).

Every bad parameter is a 400 naming it (``query.step``), with a hint of what is accepted.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from multidict import MultiMapping

from control_plane.query.cursor import decode_cursor
from control_plane.query.matchers import METRIC_NAME, Matcher, parse_matcher
from haetae.web.problem import invalid

DEFAULT_RANGE_S = 3600.0
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Like Prometheus: at most 11,000 steps per series, so a typo in `step` cannot ask for millions.
MAX_STEPS = 11_000
# Points in one response, over all its series (raw or aggregated).
MAX_POINTS = 250_000
MIN_STEP_S = 0.001

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class Agg(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    SUM = "sum"
    COUNT = "count"


@dataclass(frozen=True)
class MetricsQuery:
    """``start`` inclusive, ``end`` exclusive (unix seconds). Without ``step`` the raw samples
    are returned; with it, one point per step (aligned to ``start``) aggregated by ``agg``."""

    name: str
    matchers: tuple[Matcher, ...]
    start: float
    end: float
    step: float | None
    agg: Agg
    limit: int
    after_series: int = 0

    @property
    def steps(self) -> int:
        assert self.step is not None
        return math.ceil((self.end - self.start) / self.step)


@dataclass(frozen=True)
class PageQuery:
    limit: int
    after: str | None


def parse_metrics_query(params: MultiMapping[str], *, now: float) -> MetricsQuery:
    reject_unknown(params, ("name", "match", "start", "end", "step", "agg", "limit", "cursor"))
    name = _single(params, "name")
    if name is None:
        raise invalid("query.name", "the metric name is required")
    if METRIC_NAME.fullmatch(name) is None:
        raise invalid("query.name", f"{name[:200]!r} is not a metric name")
    matchers = tuple(parse_matcher(m, where="query.match") for m in params.getall("match", []))
    start_s, end_s = _single(params, "start"), _single(params, "end")
    end = now if end_s is None else parse_time(end_s, "query.end")
    start = end - DEFAULT_RANGE_S if start_s is None else parse_time(start_s, "query.start")
    if start >= end:
        raise invalid("query.start", "start must be before end")
    step_s = _single(params, "step")
    step = None if step_s is None else parse_duration(step_s, "query.step")
    if step is not None and (end - start) / step > MAX_STEPS:
        raise invalid(
            "query.step",
            f"{math.ceil((end - start) / step)} steps exceed the limit of {MAX_STEPS} per series",
            hint="use a larger step or a shorter range",
        )
    agg_s = _single(params, "agg")
    if agg_s is not None and step is None:
        raise invalid("query.agg", "agg needs a step", hint="add step=1m (for example)")
    try:
        agg = Agg(agg_s or Agg.AVG)
    except ValueError:
        raise invalid("query.agg", f"{agg_s!r} is not one of {', '.join(Agg)}") from None
    page = parse_page(params)
    after = 0 if page.after is None else decode_cursor(page.after, kind=int)
    return MetricsQuery(name, matchers, start, end, step, agg, page.limit, after)


def parse_page(params: MultiMapping[str]) -> PageQuery:
    raw = _single(params, "limit")
    limit = DEFAULT_LIMIT
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise invalid("query.limit", "limit must be an integer") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid("query.limit", f"limit must be between 1 and {MAX_LIMIT}")
    return PageQuery(limit, _single(params, "cursor"))


def parse_time(text: str, where: str) -> float:
    """Unix seconds (``1732720000.5``) or RFC 3339 with a zone (``2024-11-27T15:06:40Z``)."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or value < 0:
            raise invalid(where, "must be a non-negative number of unix seconds")
        return value
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or "T" not in text.upper():
        raise invalid(
            where,
            f"{text[:64]!r} is neither unix seconds nor an RFC 3339 time",
            hint="1732720000 or 2024-11-27T15:06:40Z",
        )
    return when.timestamp()


def parse_duration(text: str, where: str) -> float:
    """``30`` (seconds), ``15s``, ``1m``, ``1h30m``, ``500ms``, ``1d``, ``1w``."""
    seconds: float | None = None
    try:
        seconds = float(text)
    except ValueError:
        pos = 0
        total = 0.0
        for m in _DURATION_PART.finditer(text):
            if m.start() != pos:
                break
            total += float(m[1]) * _UNIT_S[m[2]]
            pos = m.end()
        if pos == len(text) and pos > 0:
            seconds = total
    if seconds is None or not math.isfinite(seconds):
        raise invalid(where, f"{text[:64]!r} is not a duration", hint="15s, 1m, 1h30m or 60")
    if seconds < MIN_STEP_S:
        raise invalid(where, f"must be at least {MIN_STEP_S * 1000:g}ms")
    return seconds


def _single(params: MultiMapping[str], key: str) -> str | None:
    values = params.getall(key, [])
    if len(values) > 1:
        raise invalid(f"query.{key}", f"{key} may be given only once")
    return values[0] if values else None


def reject_unknown(params: MultiMapping[str], known: Iterable[str]) -> None:
    allowed = set(known)
    for key in params:
        if key not in allowed:
            raise invalid(
                f"query.{key}",
                f"unknown parameter {key!r}",
                hint=f"known: {', '.join(sorted(allowed))}",
            )
