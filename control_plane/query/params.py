"""Query-string parsing for the monitoring API; pure (the clock is an argument).

Parameters are read through the validation seam (:mod:`haetae.web.validation`): every bad
parameter is a 400 naming it (``query.step``), and times, durations, matchers and cursors are
bounded before anything reaches PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from multidict import MultiDict, MultiMapping
from pydantic import BeforeValidator, Field

from control_plane.query.cursor import decode_cursor
from control_plane.query.matchers import MAX_MATCHER, METRIC_NAME, Matcher, parse_matcher
from haetae.web.problem import invalid
from haetae.web.validation import (
    MAX_NAME,
    Model,
    Text,
    UnixTime,
    parse_duration_s,
    parse_unix_time,
    query_dict,
    validate,
)

DEFAULT_RANGE_S = 3600.0
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Like Prometheus: at most 11,000 steps per series, so a typo in `step` cannot ask for millions.
MAX_STEPS = 11_000
# Points in one response, over all its series (raw or aggregated).
MAX_POINTS = 250_000
MIN_STEP_S = 0.001
MAX_MATCHERS = 32
# Cursors are ours (base64 of a small JSON object): anything longer is not one.
MAX_CURSOR = 512


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


MetricName = Annotated[str, Text(MAX_NAME, min_length=1, pattern=f"^{METRIC_NAME.pattern}$")]
MatcherText = Annotated[str, Text(MAX_MATCHER)]
Cursor = Annotated[str, Text(MAX_CURSOR, min_length=1)]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]
Step = Annotated[float, BeforeValidator(parse_duration_s), Field(ge=MIN_STEP_S)]


class PageParams(Model):
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None


class MetricsParams(PageParams):
    name: MetricName
    match: Annotated[list[MatcherText], Field(max_length=MAX_MATCHERS)] = []
    start: UnixTime | None = None
    end: UnixTime | None = None
    step: Step | None = None
    agg: Agg | None = None


def parse_metrics_query(params: MultiMapping[str], *, now: float) -> MetricsQuery:
    p = validate(MetricsParams, query_dict(params, MetricsParams), where="query")
    matchers = tuple(parse_matcher(m, where="query.match") for m in p.match)
    end = now if p.end is None else p.end
    start = end - DEFAULT_RANGE_S if p.start is None else p.start
    if start >= end:
        raise invalid("query.start", "start must be before end")
    step = p.step
    if step is not None and (end - start) / step > MAX_STEPS:
        raise invalid(
            "query.step",
            f"{math.ceil((end - start) / step)} steps exceed the limit of {MAX_STEPS} per series",
            hint="use a larger step or a shorter range",
        )
    if p.agg is not None and step is None:
        raise invalid("query.agg", "agg needs a step", hint="add step=1m (for example)")
    after = 0 if p.cursor is None else decode_cursor(p.cursor, kind=int)
    return MetricsQuery(
        name=p.name,
        matchers=matchers,
        start=start,
        end=end,
        step=step,
        agg=p.agg or Agg.AVG,
        limit=p.limit,
        after_series=after,
    )


def parse_page(params: MultiMapping[str]) -> PageQuery:
    """``limit`` and ``cursor`` (other parameters are the caller's to check)."""
    picked = MultiDict((k, v) for k, v in params.items() if k in PageParams.model_fields)
    page = validate(PageParams, query_dict(picked, PageParams), where="query")
    return PageQuery(page.limit, page.cursor)


def parse_time(text: str, where: str) -> float:
    """Unix seconds (``1732720000.5``) or RFC 3339 with a zone (``2024-11-27T15:06:40Z``),
    between 1970 and 9999."""
    try:
        return parse_unix_time(text)
    except ValueError as exc:
        raise invalid(where, str(exc), hint="1732720000 or 2024-11-27T15:06:40Z") from None


def parse_duration(text: str, where: str) -> float:
    """``30`` (seconds), ``15s``, ``1m``, ``1h30m``, ``500ms``, ``1d``, ``1w``: at least 1ms,
    at most ten years."""
    try:
        seconds = parse_duration_s(text)
    except ValueError as exc:
        raise invalid(where, str(exc), hint="15s, 1m, 1h30m or 60") from None
    if seconds < MIN_STEP_S:
        raise invalid(where, f"must be at least {MIN_STEP_S * 1000:g}ms")
    return seconds


def reject_unknown(params: MultiMapping[str], known: Iterable[str]) -> None:
    allowed = set(known)
    for key in params:
        if key not in allowed:
            raise invalid(
                f"query.{key[:64]}",
                f"unknown parameter {key[:64]!r}",
                hint=f"known: {', '.join(sorted(allowed))}",
            )
