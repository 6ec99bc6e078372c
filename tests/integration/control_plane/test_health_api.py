"""Health endpoints answer from cached checks, in application/health+json."""

from __future__ import annotations

import time

from control_plane.appkeys import HEALTH


async def test_liveness(control_plane) -> None:  # type: ignore[no-untyped-def]
    resp = await control_plane.client.get("/health")
    assert resp.status == 200
    assert resp.content_type == "application/health+json"
    assert (await resp.json())["status"] == "pass"


async def test_dependencies_report_postgres_and_redis_latency(control_plane) -> None:  # type: ignore[no-untyped-def]
    resp = await control_plane.client.get("/health/dependencies")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "pass"
    for dep in ("postgres", "redis"):
        (check,) = body["checks"][f"{dep}:responseTime"]
        assert check["status"] == "pass"
        assert check["componentType"] == "datastore"
        assert check["observedUnit"] == "ms"
        assert check["observedValue"] >= 0
        assert "time" in check


async def test_detailed_includes_process_checks(control_plane) -> None:  # type: ignore[no-untyped-def]
    body = await (await control_plane.client.get("/health/detailed")).json()
    assert body["status"] == "pass"
    assert body["checks"]["memory:utilization"][0]["observedValue"] > 0
    assert "uptime" in body["checks"]


async def test_health_answers_from_memory(control_plane) -> None:  # type: ignore[no-untyped-def]
    # Generous sanity bound only: 50 answers must not each wait on a database round trip.
    start = time.perf_counter()
    for _ in range(50):
        assert (await control_plane.client.get("/health/detailed")).status == 200
    assert (time.perf_counter() - start) / 50 < 0.1


async def test_failing_critical_dependency_fails_and_noncritical_warns(control_plane) -> None:  # type: ignore[no-untyped-def]
    monitor = control_plane.client.app[HEALTH]

    async def broken() -> None:
        raise ConnectionError("connection refused")

    monitor.add("search", "datastore", broken, critical=False)
    await monitor.check_all()
    resp = await control_plane.client.get("/health/dependencies")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "warn"
    assert body["checks"]["search:responseTime"][0]["status"] == "fail"
    assert "refused" in body["checks"]["search:responseTime"][0]["output"]

    monitor.add("ledger", "datastore", broken)
    await monitor.check_all()
    resp = await control_plane.client.get("/health/dependencies")
    assert resp.status == 503
    assert (await resp.json())["status"] == "fail"
