"""`haetae up` from nothing: embedded servers, three services, data visible, a clean stop."""

from __future__ import annotations

import stat
import urllib.request
from pathlib import Path

import orjson
import psutil
from e2e_stack import running_up, wait_for


def test_up_runs_everything_on_embedded_servers_and_stops_cleanly(tmp_path: Path) -> None:
    with running_up(tmp_path) as up:
        token_file = up.data_dir / "admin.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

        def samples() -> list:  # type: ignore[type-arg]
            req = urllib.request.Request(
                f"http://127.0.0.1:{up.cp_port}/admin/monitoring/metrics?name=demo_state",
                headers=up.admin_headers,
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return orjson.loads(resp.read())["series"]  # type: ignore[no-any-return]
            except OSError:
                return []

        series = wait_for(samples, 30, "the demo app's metrics through the query API")
        assert series[0]["agent"] == "local-demo"
        children = psutil.Process(up.proc.pid).children(recursive=True)
        # control plane, demo app, agent, worker, peers, redis and postgres (in the foreground)
        assert len(children) >= 7
        assert {"postgres", "redis-server"} <= {c.name() for c in children}
        banner = up.banner()
        assert f"http://127.0.0.1:{up.cp_port}" in banner and "admin token" in banner
    assert all(not c.is_running() or c.status() == psutil.STATUS_ZOMBIE for c in children)
    # Data is kept between runs.
    assert (up.data_dir / "postgres" / "PG_VERSION").exists()
