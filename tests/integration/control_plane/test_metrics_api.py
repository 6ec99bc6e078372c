"""The control plane's own /metrics: route-template latency, ingest counters, pool stats."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


async def test_metrics_exposition(control_plane) -> None:  # type: ignore[no-untyped-def]
    client = control_plane.client
    await client.get("/health")
    await client.get("/admin/agents", headers=control_plane.admin())
    await client.get("/admin/tokens/unknown-route-segment")  # 405 from a real route template
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(await resp.text())}

    latency = families["haetae_http_request_duration_seconds"]
    routes = {
        (s.labels["route"], s.labels["method"], s.labels["status"])
        for s in latency.samples
        if s.name.endswith("_count")
    }
    assert ("/health", "GET", "200") in routes
    assert ("/admin/agents", "GET", "200") in routes
    # raw paths never become labels: the template does
    assert all("unknown-route-segment" not in r[0] for r in routes)

    pool = {s.labels["state"]: s.value for s in families["haetae_db_pool_connections"].samples}
    assert set(pool) == {"idle", "busy"} and sum(pool.values()) >= 1
    outcomes = {s.labels["outcome"] for s in families["haetae_ingest_reports"].samples}
    assert {"stored", "duplicate", "rejected", "failed"} <= outcomes
    assert families["haetae_dependency_up"].samples
