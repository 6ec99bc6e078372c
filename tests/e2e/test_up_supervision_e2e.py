"""`haetae up` supervises everything it starts: a SIGKILLed embedded server comes back within
seconds with a console line and the control plane recovers by itself; a SIGKILLed `haetae up`
leaves no server behind; generated secrets are owner-only."""

from __future__ import annotations

import os
import signal
import stat
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import psutil
import pytest
from e2e_stack import Up, running_up, wait_for

from haetae.procs import processes_in


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    # Outside pytest's basetemp: under root the PostgreSQL service user must traverse the data
    # directory's ancestors, and each new pytest session resets pytest-of-root to 0700.
    with tempfile.TemporaryDirectory(prefix="haetae-e2e-up-") as d, running_up(Path(d)) as u:
        yield u


def child_named(up: Up, name: str) -> psutil.Process:
    found = [c for c in psutil.Process(up.proc.pid).children() if c.name() == name]
    assert len(found) == 1, (name, found)
    return found[0]


def detailed_health(up: Up) -> str:
    try:
        url = f"http://127.0.0.1:{up.cp_port}/health/detailed"
        with urllib.request.urlopen(url, timeout=3) as resp:
            return str(orjson.loads(resp.read())["status"])
    except OSError as exc:  # 503 while a dependency is down
        body = getattr(exc, "read", lambda: b"{}")()
        return str(orjson.loads(body or b"{}").get("status", "down"))


def admin_ok(up: Up) -> bool:
    req = urllib.request.Request(
        f"http://127.0.0.1:{up.cp_port}/admin/agents", headers=up.admin_headers
    )
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def kill_and_expect_restart(up: Up, process_name: str, service: str) -> None:
    victim = child_named(up, process_name)
    wait_for(lambda: detailed_health(up) == "pass", 30, "health to pass before the kill")
    victim.send_signal(signal.SIGKILL)
    died = f"haetae: {service} (pid {victim.pid}) was killed by SIGKILL; restarting in"
    wait_for(lambda: died in up.banner(), 10, f"the console line for {service}'s death")
    wait_for(
        lambda: f"haetae: {service} restarted (pid" in up.banner().split(died, 1)[1],
        20,
        f"{service} to be restarted",
    )
    assert not victim.is_running() or victim.status() == psutil.STATUS_ZOMBIE
    replacement = child_named(up, process_name)
    assert replacement.pid != victim.pid  # reaped and replaced: no zombie left under up
    assert all(c.status() != psutil.STATUS_ZOMBIE for c in psutil.Process(up.proc.pid).children())
    # The control plane reconnects by itself: health passes and /admin answers again.
    wait_for(lambda: detailed_health(up) == "pass", 30, f"health to pass after {service}")
    wait_for(lambda: admin_ok(up), 30, f"/admin/agents after {service} came back")


def test_killed_embedded_redis_is_restarted_and_the_control_plane_recovers(up: Up) -> None:
    kill_and_expect_restart(up, "redis-server", "redis")


def test_killed_postmaster_is_restarted_and_the_control_plane_recovers(up: Up) -> None:
    kill_and_expect_restart(up, "postgres", "postgres")


def test_generated_secrets_and_data_are_owner_only(up: Up) -> None:
    for name in ("control-plane.yaml", "enrolment.token", "admin.token"):
        assert stat.S_IMODE((up.data_dir / name).stat().st_mode) == 0o600, name
    assert "xoxb-local-peers" in (up.data_dir / "control-plane.yaml").read_text()
    mode = stat.S_IMODE(up.data_dir.stat().st_mode)
    # Under root the PostgreSQL service user gets search permission (o+x) on the way in only.
    assert mode == (0o701 if os.geteuid() == 0 else 0o700), oct(mode)
    logs = up.data_dir / "logs"
    assert {"postgres.log", "redis.log", "control-plane.log"} <= {p.name for p in logs.iterdir()}


def test_no_server_survives_a_sigkilled_haetae_up() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="haetae-e2e-up-") as d,
        running_up(Path(d), clean_stop=False) as up,
    ):
        descendants = psutil.Process(up.proc.pid).children(recursive=True)
        names = {p.name() for p in descendants}
        assert {"postgres", "redis-server"} <= names, names
        up.proc.send_signal(signal.SIGKILL)
        up.proc.wait()

        def all_gone() -> bool:
            return not any(
                p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in descendants
            )

        wait_for(all_gone, 10, "every process started by haetae up to exit")
        assert processes_in(up.data_dir / "postgres", "postgres") == []
        assert processes_in(up.data_dir / "redis", "redis-server") == []
        # PostgreSQL shut down cleanly (fast shutdown on the parent-death signal).
        assert not (up.data_dir / "postgres" / "postmaster.pid").exists()
