"""The metrics query against a real PostgreSQL, checked against hand-computed values."""

from __future__ import annotations

import datetime as dt
import math

import asyncpg
import orjson
import pytest
from multidict import MultiDict

from control_plane.query import metrics as metrics_mod
from control_plane.query.metrics import MetricsPage, fetch_metrics
from control_plane.query.params import parse_metrics_query
from control_plane.store import partitions
from haetae.web.problem import ProblemError

BASE = dt.datetime(2024, 3, 10, 12, tzinfo=dt.UTC).timestamp()
NAME = "http_requests_total"
# series_id -> (agent, name, labels)
SERIES = {
    1: ("a", NAME, {"path": "/", "code": "200"}),
    2: ("b", NAME, {"path": "/api", "code": "500"}),
    3: ("a", NAME, {"path": "/api", "code": "503"}),
    4: ("a", "other", {}),
    5: ("a", NAME, {"path": "/old", "code": "200"}),  # no samples in the range
}
# offsets 0,10,...,70 s from BASE; values differ per series so mixing shows
VALUES = {
    1: [1, 2, 3, 4, 5, 6, 7, 8],
    2: [10, 30, 20, 0, -5, 5, 100, 50],
    3: [0, 0, 0, 0, 0, 0, 0, 1],
    4: [9, 9, 9, 9, 9, 9, 9, 9],
}


@pytest.fixture
async def data(pool: asyncpg.Pool) -> asyncpg.Pool:
    async with pool.acquire() as conn:
        await partitions.create_partitions(
            conn, [partitions.day_of(BASE - 86_400), partitions.day_of(BASE)]
        )
        await conn.executemany(
            """INSERT INTO series (series_id, agent_id, name, labels, labels_key)
               OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4::text::jsonb, $4)""",
            [
                (sid, a, n, orjson.dumps(lb, option=orjson.OPT_SORT_KEYS).decode())
                for sid, (a, n, lb) in SERIES.items()
            ],
        )
        rows = [
            (sid, BASE + 10 * i, float(v)) for sid, vs in VALUES.items() for i, v in enumerate(vs)
        ]
        rows.append((5, BASE - 3600, 1.0))
        await conn.executemany("INSERT INTO samples VALUES ($1, to_timestamp($2), $3)", rows)
    return pool


async def run(pool: asyncpg.Pool, **params: str | list[str]) -> MetricsPage:
    params = {"name": NAME, "start": str(BASE), "end": str(BASE + 90), **params}
    pairs: list[tuple[str, str]] = []
    for k, v in params.items():
        pairs.extend((k, x) for x in (v if isinstance(v, list) else [v]))
    return await fetch_metrics(pool, parse_metrics_query(MultiDict(pairs), now=BASE + 100))


def by_series(page: MetricsPage) -> dict[int, list[tuple[float, float]]]:
    return {s.series_id: s.points for s in page.series}


@pytest.mark.parametrize(
    ("agg", "series_2"),
    [
        ("avg", [20.0, 0.0, 75.0]),
        ("min", [10.0, -5.0, 50.0]),
        ("max", [30.0, 5.0, 100.0]),
        ("sum", [60.0, 0.0, 150.0]),
        ("count", [3.0, 3.0, 2.0]),
        ("last", [20.0, 5.0, 50.0]),
    ],
)
async def test_aggregation_per_step(data: asyncpg.Pool, agg: str, series_2: list[float]) -> None:
    page = await run(data, step="30s", agg=agg)
    got = by_series(page)
    assert sorted(got) == [1, 2, 3]  # series 4 is another metric, 5 has nothing in range
    assert got[2] == [(BASE, series_2[0]), (BASE + 30, series_2[1]), (BASE + 60, series_2[2])]
    s1 = next(s for s in page.series if s.series_id == 1)
    assert (s1.name, s1.agent, s1.labels) == (NAME, "a", {"path": "/", "code": "200"})


async def test_steps_align_to_multiples_of_step_and_range_is_half_open(
    data: asyncpg.Pool,
) -> None:
    page = await run(data, start=str(BASE + 5), end=str(BASE + 40), step="20s", agg="sum")
    # buckets at multiples of 20 s: [0,20) from 5 on -> 10 ; [20,40) -> 20,30 (end excluded)
    assert by_series(page)[1] == [(BASE, 2), (BASE + 20, 3 + 4)]


async def test_raw_points_without_step(data: asyncpg.Pool) -> None:
    page = await run(data, start=str(BASE + 10), end=str(BASE + 40))
    assert by_series(page)[2] == [(BASE + 10, 30.0), (BASE + 20, 20.0), (BASE + 30, 0.0)]


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        (['code=~"5.."'], [2, 3]),
        (['agent="a"'], [1, 3]),
        (['agent=~"a|b"', 'path="/api"'], [2, 3]),
        (['path!="/api"'], [1]),
        (['code!~"50."'], [1]),
        (['code=~"5"'], []),  # anchored: "5" does not match "500"
        (['env=""'], [1, 2, 3]),
        (['env!=""'], []),
        (['path=~"/.*"', 'code!="503"'], [1, 2]),
    ],
)
async def test_label_matchers(data: asyncpg.Pool, matchers: list[str], expected: list[int]) -> None:
    assert sorted(by_series(await run(data, match=matchers))) == expected


async def test_keyset_pagination_walks_every_series_once(data: asyncpg.Pool) -> None:
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(5):
        page = await run(data, limit="1", **({"cursor": cursor} if cursor else {}))
        seen += [s.series_id for s in page.series]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [1, 2, 3]
    two = await run(data, limit="2")
    assert [s.series_id for s in two.series] == [1, 2] and two.next_cursor is not None
    three = await run(data, limit="3")
    assert three.next_cursor is None


async def test_a_regex_postgres_rejects_is_a_400(data: asyncpg.Pool) -> None:
    with pytest.raises(ProblemError) as err:
        await run(data, match=['code=~"(?P<x>5)00"'])
    assert err.value.status == 400 and err.value.field == "query.match"


async def test_points_cap(data: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_mod, "MAX_POINTS", 5)
    with pytest.raises(ProblemError) as err:
        await run(data, step="10s")  # 3 series x 9 steps
    assert err.value.field == "query.step"
    with pytest.raises(ProblemError) as err:
        await run(data)  # 24 raw samples
    assert err.value.field == "query.step"
    assert len((await run(data, step="30s", limit="1")).series) == 1  # 1 x 3 fits


async def test_non_finite_values_survive(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await partitions.create_partitions(conn, [partitions.day_of(BASE)])
        await conn.execute(
            """INSERT INTO series (series_id, agent_id, name, labels, labels_key)
               OVERRIDING SYSTEM VALUE VALUES (1, 'a', $1, '{}', '{}')""",
            NAME,
        )
        await conn.executemany(
            "INSERT INTO samples VALUES (1, to_timestamp($1), $2)",
            [(BASE, math.nan), (BASE + 1, math.inf)],
        )
    pts = by_series(await run(pool))[1]
    assert math.isnan(pts[0][1]) and pts[1][1] == math.inf
