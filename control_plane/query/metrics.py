"""Reading series and their points back from PostgreSQL.

Two queries per page: the page of series (keyset on ``series_id``; label matchers pushed into
SQL so ``LIMIT`` counts matching series; only series with samples in the range), then their
points (raw, or one aggregate per step via ``date_bin``, buckets at multiples of the step).
The SQL text is built by pure functions; values always travel as parameters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from control_plane.query.cursor import encode_cursor
from control_plane.query.matchers import AGENT_LABEL, Matcher, MatchOp
from control_plane.query.params import MAX_POINTS, Agg, MetricsQuery
from haetae.web.problem import invalid

Point = tuple[float, float]

_AGG_SQL = {
    Agg.AVG: "avg(x.value)",
    Agg.MIN: "min(x.value)",
    Agg.MAX: "max(x.value)",
    Agg.SUM: "sum(x.value)",
    Agg.COUNT: "count(*)::float8",
    Agg.LAST: "(array_agg(x.value ORDER BY x.ts DESC))[1]",
}


@dataclass
class SeriesPoints:
    series_id: int
    name: str
    labels: dict[str, str]
    agent: str
    points: list[Point]


@dataclass
class MetricsPage:
    series: list[SeriesPoints]
    next_cursor: str | None


class _Params:
    """Collects positional SQL parameters and hands out their ``$n`` placeholders."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def matcher_sql(m: Matcher, p: _Params) -> str:
    if m.label == AGENT_LABEL:
        subject = "s.agent_id"
    else:
        if m.op is MatchOp.EQ and m.value != "":
            # Containment can use the GIN index on labels.
            return f"s.labels @> {p.add(_json_pair(m.label, m.value))}::text::jsonb"
        subject = f"COALESCE(s.labels ->> {p.add(m.label)}, '')"
    if m.op is MatchOp.EQ:
        return f"{subject} = {p.add(m.value)}"
    if m.op is MatchOp.NE:
        return f"{subject} <> {p.add(m.value)}"
    op = "~" if m.op is MatchOp.RE else "!~"
    return f"{subject} {op} {p.add(m.anchored_pattern)}"


def series_sql(q: MetricsQuery) -> tuple[str, list[Any]]:
    p = _Params()
    where = [
        f"s.name = {p.add(q.name)}",
        f"s.series_id > {p.add(q.after_series)}",
        *(matcher_sql(m, p) for m in q.matchers),
        "EXISTS (SELECT 1 FROM samples x WHERE x.series_id = s.series_id"
        f" AND x.ts >= {p.add(_utc(q.start))} AND x.ts < {p.add(_utc(q.end))})",
    ]
    # One more than the page, to know whether there is a next one.
    limit = p.add(q.limit + 1)
    sql = (
        "SELECT s.series_id, s.agent_id, s.name, s.labels FROM series s WHERE "
        + " AND ".join(where)
        + f" ORDER BY s.series_id LIMIT {limit}"
    )
    return sql, p.values


def points_sql(q: MetricsQuery, series_ids: list[int]) -> tuple[str, list[Any]]:
    p = _Params()
    ids, start, end = p.add(series_ids), p.add(_utc(q.start)), p.add(_utc(q.end))
    in_range = f"x.series_id = ANY({ids}::int8[]) AND x.ts >= {start} AND x.ts < {end}"
    if q.step is None:
        sql = (
            "SELECT x.series_id, extract(epoch FROM x.ts)::float8 AS t, x.value FROM samples x"
            f" WHERE {in_range} ORDER BY x.series_id, x.ts LIMIT {p.add(MAX_POINTS + 1)}"
        )
        return sql, p.values
    step = p.add(dt.timedelta(seconds=q.step))
    # Buckets start at whole multiples of the step since the epoch (as Prometheus and Grafana
    # align steps), not at `start`: the same step gives the same buckets whatever the range.
    bucket = f"date_bin({step}::interval, x.ts, TIMESTAMPTZ 'epoch')"
    sql = (
        f"SELECT x.series_id, extract(epoch FROM {bucket})::float8 AS t,"
        f" {_AGG_SQL[q.agg]} AS value FROM samples x WHERE {in_range}"
        " GROUP BY x.series_id, t ORDER BY x.series_id, t"
    )
    return sql, p.values


async def fetch_metrics(conn: asyncpg.Connection | asyncpg.Pool, q: MetricsQuery) -> MetricsPage:
    sql, args = series_sql(q)
    try:
        rows = await conn.fetch(sql, *args)
    except asyncpg.InvalidRegularExpressionError as exc:
        raise invalid("query.match", f"bad regular expression: {exc}") from None
    has_more = len(rows) > q.limit
    rows = rows[: q.limit]
    series = [SeriesPoints(r["series_id"], r["name"], r["labels"], r["agent_id"], []) for r in rows]
    if not series:
        return MetricsPage([], None)
    # One more bucket than steps when `start` falls inside one.
    if q.step is not None and len(series) * (q.steps + 1) > MAX_POINTS:
        raise invalid(
            "query.step",
            f"{len(series)} series x {q.steps} steps exceed {MAX_POINTS} points per response",
            hint="use a larger step, a shorter range or a smaller limit",
        )
    by_id = {s.series_id: s for s in series}
    sql, args = points_sql(q, list(by_id))
    points = await conn.fetch(sql, *args)
    if len(points) > MAX_POINTS:
        raise invalid(
            "query.step",
            f"more than {MAX_POINTS} raw samples in the range",
            hint="set step (e.g. step=1m) to aggregate, or narrow the range or limit",
        )
    for r in points:
        by_id[r[0]].points.append((r[1], r[2]))
    next_cursor = encode_cursor(series[-1].series_id) if has_more else None
    return MetricsPage(series, next_cursor)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _json_pair(label: str, value: str) -> str:
    return orjson.dumps({label: value}).decode()
