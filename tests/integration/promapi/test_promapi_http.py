"""The Prometheus HTTP API over stored samples: envelope, step alignment, lookback, label
routes, POST forms, errors in Prometheus's shape (never problem+json, never a 5xx for bad input)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from promapi_support import PromApiPlane, store_series

from control_plane.appkeys import POOL

# A fixed minute-aligned origin an hour ago: older than the app, so read from PostgreSQL.
T0 = float(int(time.time() // 60 * 60) - 3600)


async def _seed(plane: PromApiPlane) -> None:
    pool = plane.client.app[POOL]
    async with pool.acquire() as conn:
        for path, per_s in (("/a", 2.0), ("/b", 0.5)):
            # A counter sampled every 15 s for 20 minutes, rising at per_s.
            pts = [(T0 + i * 15, per_s * i * 15) for i in range(81)]
            await store_series(conn, "http_requests_total", {"path": path}, pts)
        await store_series(conn, "temperature", {"room": "k"}, [(T0, 21.5), (T0 + 600, 1e-05)])


async def test_instant_query_vector_scalar_and_matrix(plane: PromApiPlane) -> None:
    await _seed(plane)
    status, body = await plane.get(
        "/api/v1/query", query="sum by (path) (rate(http_requests_total[1m]))", time=T0 + 600
    )
    assert status == 200 and body["status"] == "success"
    data = body["data"]
    assert data["resultType"] == "vector"
    got = {r["metric"]["path"]: (r["value"][0], float(r["value"][1])) for r in data["result"]}
    assert got == {"/a": (T0 + 600, pytest.approx(2)), "/b": (T0 + 600, pytest.approx(0.5))}

    status, body = await plane.get("/api/v1/query", query="1 + 2", time=T0)
    assert body["data"] == {"resultType": "scalar", "result": [T0, "3"]}

    # A bare range selector: the raw points of (t - 1m, t].
    status, body = await plane.get("/api/v1/query", query='temperature{room="k"}[1m]', time=T0)
    assert body["data"]["resultType"] == "matrix"
    [series] = body["data"]["result"]
    assert series["metric"] == {"__name__": "temperature", "room": "k", "agent": "web-1"}
    assert series["values"] == [[T0, "21.5"]]


async def test_lookback_and_value_format(plane: PromApiPlane) -> None:
    await _seed(plane)
    # 21.5 is seen for 5 minutes after T0, then nothing until the next point at T0 + 600.
    for at, want in ((T0 + 299, ["21.5"]), (T0 + 301, []), (T0 + 600, ["0.00001"])):
        _, body = await plane.get("/api/v1/query", query="temperature", time=at)
        assert [r["value"][1] for r in body["data"]["result"]] == want, at
    _, body = await plane.get(
        "/api/v1/query", query="temperature", time=T0 + 400, lookback_delta="10m"
    )
    assert [r["value"][1] for r in body["data"]["result"]] == ["21.5"]


async def test_range_query_steps_from_start(plane: PromApiPlane) -> None:
    await _seed(plane)
    start, end = T0 + 120.5, T0 + 300
    _, body = await plane.get(
        "/api/v1/query_range",
        query='rate(http_requests_total{path="/a"}[1m])',
        start=start,
        end=end,
        step="1m",
    )
    [series] = body["data"]["result"]
    assert series["metric"] == {"path": "/a", "agent": "web-1"}
    # start, start + step, ... <= end; not aligned to anything else.
    assert [t for t, _ in series["values"]] == [start, start + 60, start + 120]
    assert [float(v) for _, v in series["values"]] == pytest.approx([2, 2, 2])


async def test_rfc3339_times_and_post_form(plane: PromApiPlane) -> None:
    await _seed(plane)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + 600))
    resp = await plane.client.post(
        "/api/v1/query",
        data={"query": 'http_requests_total{path="/b"}', "time": at},
        headers=plane.auth(),
    )
    body = await resp.json()
    assert resp.status == 200
    assert body["data"]["result"][0]["value"] == [T0 + 600, "300"]


async def test_series_labels_values_metadata_buildinfo(plane: PromApiPlane) -> None:
    await _seed(plane)
    _, body = await plane.get("/api/v1/series", **{"match[]": "http_requests_total"})
    assert sorted(s["path"] for s in body["data"]) == ["/a", "/b"]
    assert body["data"][0]["__name__"] == "http_requests_total"

    # Grafana POSTs match[] (several) form-encoded.
    form = [("match[]", 'http_requests_total{path="/a"}'), ("match[]", "temperature")]
    resp = await plane.client.post("/api/v1/series", data=form, headers=plane.auth())
    body = await resp.json()
    assert sorted(s["__name__"] for s in body["data"]) == ["http_requests_total", "temperature"]

    _, body = await plane.get("/api/v1/labels")
    assert body["data"] == ["__name__", "agent", "path", "room"]
    _, body = await plane.get("/api/v1/labels", **{"match[]": "temperature"})
    assert body["data"] == ["__name__", "agent", "room"]

    _, body = await plane.get("/api/v1/label/__name__/values")
    assert body["data"] == ["http_requests_total", "temperature"]
    _, body = await plane.get("/api/v1/label/path/values", **{"match[]": '{path=~"/a|/c"}'})
    assert body["data"] == ["/a"]

    _, body = await plane.get("/api/v1/metadata")
    assert body["data"]["http_requests_total"] == [{"type": "counter", "help": "", "unit": ""}]
    _, body = await plane.get("/api/v1/status/buildinfo")
    assert body["data"]["version"].startswith("2.")


@pytest.mark.parametrize(
    ("path", "params", "error"),
    [
        ("/api/v1/query", {"query": "rate(x[1m]"}, "query"),
        ("/api/v1/query", {"query": "x", "time": "yesterday"}, "time"),
        ("/api/v1/query_range", {"query": "x", "start": 10, "end": 5, "step": 1}, "end"),
        ("/api/v1/query_range", {"query": "x", "start": 0, "end": 100000, "step": 1}, "11,000"),
        ("/api/v1/query_range", {"query": "x", "start": 0, "end": 10, "step": "0"}, "step"),
        ("/api/v1/query_range", {"query": "x[5m]", "start": 0, "end": 10, "step": 1}, "range"),
        ("/api/v1/query_range", {"query": "x", "start": 0, "end": 10}, "step"),
        ("/api/v1/series", {}, "match[]"),
        ("/api/v1/series", {"match[]": "sum(x)"}, "match[]"),
        ("/api/v1/label/1bad/values", {}, "label name"),
    ],
)
async def test_bad_input_is_bad_data(
    plane: PromApiPlane, path: str, params: dict[str, Any], error: str
) -> None:
    resp = await plane.client.get(path, params=params, headers=plane.auth())
    body = await resp.json()
    assert resp.status == 400, body
    assert resp.content_type == "application/json"
    assert body["status"] == "error" and body["errorType"] == "bad_data"
    assert error in body["error"]


async def test_limits_answer_execution(db_dsn: str, aiohttp_client: Any, tmp_path: Any) -> None:
    from promapi_support import make_config

    from control_plane.app import create_app

    config = make_config(db_dsn, tmp_path, promapi={"max_series": 1, "max_samples": 50})
    client = await aiohttp_client(create_app(config))
    plane = PromApiPlane(client, (tmp_path / "admin.token").read_text().strip(), config)
    await _seed(plane)
    status, body = await plane.get("/api/v1/query", query="http_requests_total", time=T0 + 60)
    assert (status, body.get("errorType")) == (422, "execution"), body
    assert "series" in body["error"]
    status, body = await plane.get(
        "/api/v1/query_range",
        query='http_requests_total{path="/a"}',
        start=T0,
        end=T0 + 1200,
        step=15,
    )
    assert (status, body["errorType"]) == (422, "execution")
    assert "samples" in body["error"]


async def test_needs_a_read_token(plane: PromApiPlane) -> None:
    resp = await plane.client.get("/api/v1/query", params={"query": "up"})
    body = await resp.json()
    assert resp.status == 401 and body["errorType"] == "unauthorized"
    resp = await plane.client.get(
        "/api/v1/query", params={"query": "up"}, headers={"Authorization": "Bearer nope"}
    )
    assert resp.status == 401


async def test_timeout_answers_503(plane: PromApiPlane) -> None:
    await _seed(plane)
    status, body = await plane.get(
        "/api/v1/query_range",
        query="rate(http_requests_total[1m]) * 2 + sum(rate(http_requests_total[5m]))",
        start=T0,
        end=T0 + 1200,
        step=0.2,
        timeout="1ms",
    )
    assert (status, body["errorType"]) == (503, "timeout"), body
