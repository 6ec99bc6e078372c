"""`haetae up` from nothing: embedded servers, three services, data visible, a clean stop."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import psutil
from e2e_stack import free_port, http_ok, wait_for


def test_up_runs_everything_on_embedded_servers_and_stops_cleanly(tmp_path: Path) -> None:
    cp, agent, demo = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAETAE_")}
    data_dir = tmp_path / "data"
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "haetae.cli",
            "up",
            "--data-dir",
            str(data_dir),
            "--control-plane-port",
            str(cp),
            "--agent-port",
            str(agent),
            "--demo-port",
            str(demo),
            "--interval",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        try:
            wait_for(
                lambda: (
                    (data_dir / "admin.token").exists()
                    and http_ok(f"http://127.0.0.1:{agent}/health")
                ),
                90,
                "haetae up to start",
            )
        except AssertionError:
            raise AssertionError(diagnostics(tmp_path, data_dir)) from None
        token_file = data_dir / "admin.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}

        def samples() -> list:  # type: ignore[type-arg]
            req = urllib.request.Request(
                f"http://127.0.0.1:{cp}/admin/monitoring/metrics?name=demo_state", headers=headers
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return orjson.loads(resp.read())["series"]  # type: ignore[no-any-return]
            except OSError:
                return []

        series = wait_for(samples, 30, "the demo app's metrics through the query API")
        assert series[0]["agent"] == "local-demo"
        children = psutil.Process(up.pid).children(recursive=True)
        # control plane, demo app, agent, worker, redis (postgres daemonises)
        assert len(children) >= 5
        banner = (tmp_path / "up.log").read_text()
        assert f"http://127.0.0.1:{cp}" in banner and "admin token" in banner
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(60)
        log.close()
    assert up.returncode == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert all(not c.is_running() or c.status() == psutil.STATUS_ZOMBIE for c in children)
    # Data is kept between runs.
    assert (data_dir / "postgres" / "PG_VERSION").exists()


def diagnostics(tmp_path: Path, data_dir: Path) -> str:
    """The supervisor's output and the tail of each child's log, for a failed start."""
    parts = ["haetae up did not start in time", (tmp_path / "up.log").read_text()[-3000:]]
    for log_file in sorted((data_dir / "logs").glob("*.log")):
        parts.append(f"--- {log_file.name}\n{log_file.read_text(errors='replace')[-2000:]}")
    return "\n".join(parts)
