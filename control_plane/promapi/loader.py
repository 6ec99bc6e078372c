"""Filling a :class:`~.snapshot.Snapshot` for one query: from the ingest windows when they hold
the whole span, else from PostgreSQL with one statement per selector.

Both are bounded: at most ``max_series`` series per selector and ``max_samples`` points in all,
past which the query fails with ``execution`` (422) rather than loading without end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg

from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.promapi.errors import bad_data, execution
from control_plane.promapi.snapshot import NAME_LABEL, SelectorNeed, Snapshot
from control_plane.query.matchers import Matcher, MatchOp

# The monitoring API's SQL builders: the same matcher semantics (and GIN-indexed equality).
from control_plane.query.metrics import _Params, matcher_sql
from control_plane.rules.ast import VectorSelector

# Load a millisecond more on each side; the evaluator's own edges decide what is in range.
_SLACK_S = 0.001


class Bounds:
    def __init__(self, max_series: int, max_samples: int) -> None:
        self.max_series = max_series
        self.max_samples = max_samples

    def check(self, snapshot: Snapshot, selected: int) -> None:
        if selected > self.max_series:
            raise execution(
                f"the query selects more than {self.max_series} series; "
                "narrow it with label matchers"
            )
        if snapshot.points_held > self.max_samples:
            raise execution(
                "query processing would load too many samples into memory "
                f"(more than {self.max_samples}); use a shorter range or fewer series"
            )


def load_windows(
    windows: SeriesWindows,
    needs: Sequence[SelectorNeed],
    start: float,
    end: float,
    bounds: Bounds,
) -> Snapshot:
    snapshot = Snapshot()
    for need in needs:
        lo, hi = need.span(start, end)
        sel = need.selector
        refs = windows.select(sel.name, sel.matchers)
        for ref in refs:
            pts = windows.points(ref.series_id, lo - _SLACK_S, hi + _SLACK_S)
            if pts:
                snapshot.add(ref, [t for t, _ in pts], [v for _, v in pts])
        bounds.check(snapshot, len(refs))
    return snapshot


async def load_stored(
    db: asyncpg.Pool | asyncpg.Connection,
    needs: Sequence[SelectorNeed],
    start: float,
    end: float,
    bounds: Bounds,
) -> Snapshot:
    snapshot = Snapshot()
    for need in needs:
        lo, hi = need.span(start, end)
        sql, args = selector_sql(need.selector, lo - _SLACK_S, hi + _SLACK_S, bounds)
        try:
            rows = await db.fetch(sql, *args)
        except asyncpg.InvalidRegularExpressionError as exc:
            raise bad_data(f"bad regular expression in a matcher: {exc}") from None
        for r in rows:
            ref = SeriesRef(r["series_id"], r["agent_id"], r["name"], r["labels"])
            snapshot.add(ref, r["t"], r["v"])
        bounds.check(snapshot, len(rows))
    return snapshot


def selector_sql(
    sel: VectorSelector, lo: float, hi: float, bounds: Bounds
) -> tuple[str, list[Any]]:
    """One statement: the matching series that have points in ``(lo, hi]``, each with its
    points as two arrays (times, values), oldest first."""
    p = _Params()
    where = series_where(sel.name, sel.matchers, p)
    per_series = p.add(bounds.max_samples + 1)
    lo_p, hi_p = p.add(_utc(lo)), p.add(_utc(hi))
    sql = (
        "SELECT s.series_id, s.agent_id, s.name, s.labels, pts.t, pts.v FROM series s"
        # date_part is float8 itself (extract is numeric, then cast: slower, the same value);
        # the aggregates take the points in the ordered subquery's order (no sort of their
        # own: a third off the statement), which Snapshot.add checks.
        " CROSS JOIN LATERAL (SELECT array_agg(date_part('epoch', x.ts))"
        " AS t, array_agg(x.value) AS v FROM (SELECT y.ts, y.value FROM samples y"
        f" WHERE y.series_id = s.series_id AND y.ts > {lo_p} AND y.ts <= {hi_p}"
        f" ORDER BY y.ts LIMIT {per_series}) x) pts"
        f" WHERE {' AND '.join(where)} AND pts.t IS NOT NULL"
        f" LIMIT {p.add(bounds.max_series + 1)}"
    )
    return sql, p.values


def series_where(name: str | None, matchers: Sequence[Matcher], p: _Params) -> list[str]:
    """The WHERE terms of a selector over ``series s`` (shared with the metadata routes)."""
    where = ["TRUE"]
    if name:
        where.append(f"s.name = {p.add(name)}")
    for m in matchers:
        where.append(name_matcher_sql(m, p) if m.label == NAME_LABEL else matcher_sql(m, p))
    return where


def name_matcher_sql(m: Matcher, p: _Params) -> str:
    if m.op is MatchOp.EQ:
        return f"s.name = {p.add(m.value)}"
    if m.op is MatchOp.NE:
        return f"s.name <> {p.add(m.value)}"
    op = "~" if m.op is MatchOp.RE else "!~"
    return f"s.name {op} {p.add(m.anchored_pattern)}"


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(max(ts, 0.0), dt.UTC)
