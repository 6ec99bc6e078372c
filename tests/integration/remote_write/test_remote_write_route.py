"""``POST /api/v1/write`` on a control plane with real PostgreSQL: what is stored, what a retry
does, and the status Prometheus's queue manager gets for each kind of failure."""

from __future__ import annotations

import asyncio

import pytest
from remote_write_support import Plane, body, now_ms, snappy
from tests_support import assert_problem

from control_plane.appkeys import INGESTOR, METRICS
from control_plane.config import IngestConfig


def metric(plane: Plane, name: str, **labels: str) -> float:
    value = plane.app[METRICS].registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_samples_are_stored_as_the_sender_agent(plane: Plane) -> None:
    token = await plane.enroll("prom-eu1")
    t = now_ms()
    resp = await plane.write(
        token,
        body(
            [
                ({"__name__": "up", "job": "node", "instance": "h1:9100"}, [(1.0, t)]),
                ({"__name__": "node_load1", "instance": "h1:9100"}, [(0.5, t - 1000), (0.7, t)]),
            ]
        ),
    )
    assert resp.status == 204, await resp.text()
    rows = await plane.pool.fetch(
        "SELECT s.agent_id, s.name, s.labels, x.ts, x.value FROM samples x "
        "JOIN series s USING (series_id) ORDER BY s.name, x.ts"
    )
    got = [(r[0], r[1], dict(r[2]) if isinstance(r[2], dict) else r[2]) for r in rows]
    assert [g[:2] for g in got] == [("prom-eu1", "node_load1")] * 2 + [("prom-eu1", "up")]
    assert [r["value"] for r in rows] == [0.5, 0.7, 1.0]
    assert rows[2]["ts"].timestamp() == t / 1000
    # The rule windows have them too (the same ingest path).
    windows = plane.app[INGESTOR].windows
    assert len(windows.select("up")) == 1
    # And the monitoring API serves them, labels and source as written.
    resp = await plane.client.get(
        "/admin/monitoring/metrics",
        params={"name": "up", "match": 'job="node"'},
        headers=plane.bearer(plane.admin_token),
    )
    assert resp.status == 200, await resp.text()
    series = (await resp.json())["series"]
    assert [(s["agent"], s["labels"]) for s in series] == [
        ("prom-eu1", {"job": "node", "instance": "h1:9100"})
    ]
    assert metric(plane, "haetae_remote_write_requests_total", outcome="stored") == 1


async def test_a_retried_batch_is_stored_once(plane: Plane) -> None:
    token = await plane.enroll("prom-1")
    t = now_ms()
    data = body([({"__name__": "m", "i": str(i)}, [(float(i), t)]) for i in range(50)])
    # The retry races its original (Prometheus gave up waiting) and comes again later.
    first, racing = await asyncio.gather(plane.write(token, data), plane.write(token, data))
    again = await plane.write(token, data)
    assert (first.status, racing.status, again.status) == (204, 204, 204)
    assert await plane.sample_count() == 50
    assert (
        metric(plane, "haetae_remote_write_requests_total", outcome="duplicate")
        + metric(plane, "haetae_remote_write_samples_skipped_total", reason="duplicates")
        >= 2
    )


async def test_out_of_order_and_duplicate_samples_are_dropped_the_rest_stored(
    plane: Plane,
) -> None:
    token = await plane.enroll("prom-1")
    t = now_ms()
    assert (await plane.write(token, body([({"__name__": "m"}, [(1.0, t)])]))).status == 204
    late = body(
        [
            ({"__name__": "m"}, [(0.5, t - 5000), (1.0, t), (2.0, t + 1000)]),
            ({"__name__": "other"}, [(3.0, t)]),
        ]
    )
    assert (await plane.write(token, late)).status == 204
    values = [r[0] for r in await plane.pool.fetch("SELECT value FROM samples ORDER BY value")]
    assert values == [1.0, 2.0, 3.0]
    skipped = "haetae_remote_write_samples_skipped_total"
    assert metric(plane, skipped, reason="out_of_order") == 1
    assert metric(plane, skipped, reason="duplicates") == 1


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x00\x01garbage", id="bad-snappy"),
        pytest.param(snappy(b"\x0a\x7f\x0a"), id="bad-protobuf"),
        pytest.param(
            body(
                [
                    ({"__name__": "good"}, [(1.0, now_ms())]),
                    ({"__name__": "m", "path": "/a\x00b"}, [(1.0, now_ms())]),
                ]
            ),
            id="nul-label",
        ),
    ],
)
async def test_poison_is_400_and_nothing_is_stored(plane: Plane, data: bytes) -> None:
    token = await plane.enroll("prom-1")
    resp = await plane.write(token, data)
    await assert_problem(resp, 400)
    assert await plane.sample_count() == 0
    assert await plane.series_count() == 0
    assert metric(plane, "haetae_remote_write_requests_total", outcome="invalid") == 1
    # The sender's next good batch is stored.
    good = body([({"__name__": "good"}, [(1.0, now_ms())])])
    assert (await plane.write(token, good)).status == 204
    assert await plane.sample_count() == 1


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"Content-Encoding": "identity"}, "header.Content-Encoding"),
        ({"Content-Encoding": "zstd"}, "header.Content-Encoding"),
        ({"Content-Type": "application/json"}, "header.Content-Type"),
        (
            {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
            "header.Content-Type",
        ),
        (
            {"X-Prometheus-Remote-Write-Version": "2.0.0"},
            "header.X-Prometheus-Remote-Write-Version",
        ),
    ],
)
async def test_other_protocols_are_415(plane: Plane, headers: dict[str, str], field: str) -> None:
    token = await plane.enroll("prom-1")
    resp = await plane.write(token, body([({"__name__": "m"}, [(1.0, now_ms())])]), **headers)
    problem = await assert_problem(resp, 415)
    assert problem["field"] == field


async def test_only_an_agent_token_may_write(plane: Plane) -> None:
    data = body([({"__name__": "m"}, [(1.0, now_ms())])])
    resp = await plane.client.post("/api/v1/write", data=data)
    await assert_problem(resp, 401)
    resp = await plane.write(plane.admin_token, data)
    await assert_problem(resp, 403)
    resp = await plane.write(plane.enrolment_token, data)
    await assert_problem(resp, 403)
    assert await plane.sample_count() == 0


async def test_a_store_failure_is_503_and_the_retry_is_stored(plane: Plane) -> None:
    token = await plane.enroll("prom-1")
    data = body([({"__name__": "m", "i": str(i)}, [(1.0, now_ms())]) for i in range(10)])
    # A real failure of the store: the idempotency table is gone for a while.
    await plane.pool.execute("ALTER TABLE ingested_reports RENAME TO ingested_reports_away")
    try:
        resp = await plane.write(token, data)
        await assert_problem(resp, 503)
        assert int(resp.headers["Retry-After"]) >= 1
    finally:
        await plane.pool.execute("ALTER TABLE ingested_reports_away RENAME TO ingested_reports")
    assert metric(plane, "haetae_remote_write_requests_total", outcome="unavailable") == 1
    assert (await plane.write(token, data)).status == 204  # Prometheus retries the same bytes
    assert await plane.sample_count() == 10


class TestSeriesLimits:
    @pytest.fixture
    def ingest_config(self) -> IngestConfig:
        return IngestConfig(
            flush_interval_s=0.01,
            max_new_series_per_report=100,
            max_new_series_per_agent_hour=150,
            max_series_per_agent=1000,
            max_series_global=1000,
        )

    async def test_the_hourly_limit_is_429_with_retry_after(self, plane: Plane) -> None:
        token = await plane.enroll("prom-1")
        t = now_ms()
        first = body([({"__name__": "m", "i": str(i)}, [(1.0, t)]) for i in range(100)])
        assert (await plane.write(token, first)).status == 204
        burst = body([({"__name__": "m", "i": str(i)}, [(1.0, t)]) for i in range(100, 200)])
        resp = await plane.write(token, burst)
        problem = await assert_problem(resp, 429)
        assert problem["limit"] == "new_series_per_agent_hour"
        assert int(resp.headers["Retry-After"]) >= 1
        assert await plane.series_count() == 100 and await plane.sample_count() == 100
        assert metric(plane, "haetae_remote_write_requests_total", outcome="limited") == 1
        # Known series go on being stored: only new ones are held back.
        later = body([({"__name__": "m", "i": str(i)}, [(2.0, t + 1000)]) for i in range(100)])
        assert (await plane.write(token, later)).status == 204
        assert await plane.sample_count() == 200

    async def test_a_batch_that_can_never_fit_is_422(self, plane: Plane) -> None:
        token = await plane.enroll("prom-1")
        t = now_ms()
        data = body([({"__name__": "m", "i": str(i)}, [(1.0, t)]) for i in range(101)])
        problem = await assert_problem(await plane.write(token, data), 422)
        assert problem["limit"] == "new_series_per_report"
        assert await plane.series_count() == 0
