"""``/series``, ``/labels``, ``/label/<name>/values`` and ``/metadata`` over the series table.

Every series carries the ``agent`` label (its agent id) and ``__name__``, as query results do.
With ``start``/``end`` only series with samples in that span count; without them, every stored
series (retention bounds what is stored).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg

from control_plane.promapi.errors import PromApiError, bad_data, execution
from control_plane.promapi.loader import series_where
from control_plane.promapi.snapshot import NAME_LABEL
from control_plane.query.matchers import AGENT_LABEL
from control_plane.query.metrics import _Params
from control_plane.rules.ast import VectorSelector
from control_plane.rules.errors import ExprError
from control_plane.rules.parser import parse_expr

# Past this many series, /series and the label routes answer 422 (ask for a narrower match).
MAX_CATALOG_SERIES = 100_000


def parse_selectors(texts: Sequence[str]) -> list[VectorSelector]:
    out = []
    for text in texts:
        try:
            expr = parse_expr(text)
        except ExprError as exc:
            raise bad_data(f'invalid parameter "match[]": {exc.detail}') from None
        if not isinstance(expr, VectorSelector):
            raise bad_data(f'invalid parameter "match[]": {text[:100]!r} is not a selector')
        out.append(expr)
    return out


def _filter_sql(
    selectors: Sequence[VectorSelector], start: float | None, end: float | None, p: _Params
) -> str:
    terms = []
    if selectors:
        ors = [
            "(" + " AND ".join(series_where(sel.name, sel.matchers, p)) + ")" for sel in selectors
        ]
        terms.append("(" + " OR ".join(ors) + ")")
    if start is not None or end is not None:
        lo = p.add(_utc(start if start is not None else 0.0))
        hi = p.add(_utc(end if end is not None else 253_402_300_799.0))
        terms.append(
            "EXISTS (SELECT 1 FROM samples x WHERE x.series_id = s.series_id"
            f" AND x.ts >= {lo} AND x.ts <= {hi})"
        )
    return " AND ".join(terms) or "TRUE"


async def find_series(
    db: asyncpg.Pool,
    selectors: Sequence[VectorSelector],
    start: float | None,
    end: float | None,
    limit: int,
) -> list[dict[str, str]]:
    p = _Params()
    where = _filter_sql(selectors, start, end, p)
    cap = limit or MAX_CATALOG_SERIES + 1
    sql = (
        "SELECT s.agent_id, s.name, s.labels FROM series s"
        f" WHERE {where} ORDER BY s.name, s.labels_key, s.agent_id LIMIT {p.add(cap)}"
    )
    rows = await _fetch(db, sql, p.values)
    if not limit and len(rows) > MAX_CATALOG_SERIES:
        raise _too_many()
    return [{**r["labels"], AGENT_LABEL: r["agent_id"], NAME_LABEL: r["name"]} for r in rows]


async def label_names(
    db: asyncpg.Pool,
    selectors: Sequence[VectorSelector],
    start: float | None,
    end: float | None,
    limit: int,
) -> list[str]:
    p = _Params()
    where = _filter_sql(selectors, start, end, p)
    sql = (
        "SELECT DISTINCT k FROM series s, jsonb_object_keys(s.labels) k"
        f" WHERE {where} ORDER BY k LIMIT {p.add(MAX_CATALOG_SERIES)}"
    )
    rows = await _fetch(db, sql, p.values)
    names = sorted({NAME_LABEL, AGENT_LABEL, *(r[0] for r in rows)})
    return names[:limit] if limit else names


async def label_values(
    db: asyncpg.Pool,
    label: str,
    selectors: Sequence[VectorSelector],
    start: float | None,
    end: float | None,
    limit: int,
) -> list[str]:
    p = _Params()
    if label == NAME_LABEL:
        subject = "s.name"
    elif label == AGENT_LABEL:
        subject = "s.agent_id"
    else:
        subject = f"s.labels ->> {p.add(label)}"
    where = _filter_sql(selectors, start, end, p)
    cap = limit or MAX_CATALOG_SERIES + 1
    sql = (
        f"SELECT DISTINCT {subject} AS v FROM series s WHERE {where} AND {subject} IS NOT NULL"
        f" ORDER BY v LIMIT {p.add(cap)}"
    )
    rows = await _fetch(db, sql, p.values)
    if not limit and len(rows) > MAX_CATALOG_SERIES:
        raise _too_many()
    return [r[0] for r in rows]


async def metadata(db: asyncpg.Pool, metric: str | None, limit: int) -> dict[str, Any]:
    """Haetae keeps no HELP or TYPE: each name's type is read from Prometheus's naming
    conventions (``_total`` a counter, ``_bucket`` a histogram), else ``unknown``."""
    p = _Params()
    where = "TRUE" if not metric else f"s.name = {p.add(metric)}"
    cap = limit or MAX_CATALOG_SERIES
    sql = f"SELECT DISTINCT s.name FROM series s WHERE {where} ORDER BY 1 LIMIT {p.add(cap)}"
    rows = await _fetch(db, sql, p.values)
    return {r[0]: [{"type": _type_of(r[0]), "help": "", "unit": ""}] for r in rows}


def _type_of(name: str) -> str:
    if name.endswith("_total"):
        return "counter"
    if name.endswith(("_bucket", "_sum", "_count")):
        return "histogram"
    return "unknown"


async def _fetch(db: asyncpg.Pool, sql: str, args: list[Any]) -> list[asyncpg.Record]:
    try:
        return await db.fetch(sql, *args)
    except asyncpg.InvalidRegularExpressionError as exc:
        raise bad_data(f"bad regular expression in a matcher: {exc}") from None


def _too_many() -> PromApiError:
    return execution(f"more than {MAX_CATALOG_SERIES} series match; narrow match[] or pass limit")


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)
