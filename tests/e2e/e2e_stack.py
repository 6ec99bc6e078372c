"""Real processes: the control plane, an agent and the demo app, started as `haetae` commands."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests_support import free_port


def http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> Proc:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "haetae.cli", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@dataclass
class Stack:
    tmp: Path
    db_dsn: str
    redis_url: str
    cp_port: int = field(default_factory=free_port)
    agent_port: int = field(default_factory=free_port)
    demo_port: int = field(default_factory=free_port)
    procs: list[Proc] = field(default_factory=list)
    enrolment: str = "e2e-enrolment-secret"

    @property
    def cp_url(self) -> str:
        return f"http://127.0.0.1:{self.cp_port}"

    @property
    def admin_headers(self) -> dict[str, str]:
        token = (self.tmp / "admin.token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def _proc(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        base = {k: v for k, v in os.environ.items() if not k.startswith("HAETAE_")}
        p = Proc(name, args, base | env, self.tmp / f"{name}.log")
        self.procs.append(p)
        return p

    def control_plane(self) -> Proc:
        return self._proc(
            "control-plane",
            ["control-plane", "--data-dir", str(self.tmp / "cp-data")],
            {
                "HAETAE_POSTGRES_DSN": self.db_dsn,
                "HAETAE_REDIS_URL": self.redis_url,
                "HAETAE_HTTP_PORT": str(self.cp_port),
                "HAETAE_AUTH_ENROLMENT_TOKEN": self.enrolment,
                "HAETAE_AUTH_BOOTSTRAP_TOKEN_FILE": str(self.tmp / "admin.token"),
                "HAETAE_LOGGING_LEVEL": "WARNING",
            },
        )

    def demo_app(self) -> Proc:
        return self._proc("demo-app", ["demo-app", "--port", str(self.demo_port)], {})

    def agent(self, interval_s: float = 1.0) -> Proc:
        demo = f"http://127.0.0.1:{self.demo_port}"
        return self._proc(
            "agent",
            ["agent"],
            {
                "HAETAE_AGENT_AGENT_ID": "e2e-agent",
                "HAETAE_AGENT_STATE_DIR": str(self.tmp / "agent-state"),
                "HAETAE_AGENT_INTERVAL_S": str(interval_s),
                "HAETAE_AGENT_CONTROL_PLANE_URL": self.cp_url,
                "HAETAE_AGENT_CONTROL_PLANE_ENROLMENT_TOKEN": self.enrolment,
                "HAETAE_AGENT_CONTROL_PLANE_REQUEST_TIMEOUT_S": "3",
                "HAETAE_AGENT_HTTP_PORT": str(self.agent_port),
                "HAETAE_AGENT_PROCESS_CMDLINE_MATCH": f"demo-app --port {self.demo_port}",
                "HAETAE_AGENT_APP_METRICS_URL": f"{demo}/metrics",
                "HAETAE_AGENT_HEALTH_URL": f"{demo}/health",
            },
        )

    def wait_control_plane(self, proc: Proc) -> None:
        try:
            wait_for(lambda: http_ok(f"{self.cp_url}/health"), 60, "control plane /health")
        except AssertionError:
            raise AssertionError(proc.log()) from None


@dataclass
class Up:
    """A running `haetae up` on free ports, with its data under ``data_dir``."""

    tmp: Path
    proc: subprocess.Popen[bytes]
    cp_port: int
    agent_port: int
    demo_port: int
    peers_port: int

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def admin_headers(self) -> dict[str, str]:
        token = (self.data_dir / "admin.token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def banner(self) -> str:
        return (self.tmp / "up.log").read_text()

    def diagnostics(self, what: str) -> str:
        """The supervisor's output and the tail of each child's log."""
        parts = [what, self.banner()[-3000:]]
        for log_file in sorted((self.data_dir / "logs").glob("*.log")):
            parts.append(f"--- {log_file.name}\n{log_file.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)


@contextlib.contextmanager
def running_up(tmp: Path, *, clean_stop: bool = True) -> Iterator[Up]:
    """Start `haetae up` in ``tmp`` (its working directory: ./rules is read from there), wait
    until the agent and the local peers answer, and stop it with SIGTERM afterwards; a clean
    stop (exit 0) is part of the contract (``clean_stop=False``: the test killed it)."""
    ports = [free_port() for _ in range(4)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAETAE_")}
    with open(tmp / "up.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "haetae.cli", "up", "--data-dir", str(tmp / "data"),
             "--control-plane-port", str(ports[0]), "--agent-port", str(ports[1]),
             "--demo-port", str(ports[2]), "--peers-port", str(ports[3]), "--interval", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
        )  # fmt: skip
    up = Up(tmp, proc, *ports)
    try:
        try:
            wait_for(
                lambda: (
                    (up.data_dir / "admin.token").exists()
                    and http_ok(f"http://127.0.0.1:{up.agent_port}/health")
                    and http_ok(f"http://127.0.0.1:{up.peers_port}/health")
                ),
                90,
                "haetae up to start",
            )
        except AssertionError:
            raise AssertionError(up.diagnostics("haetae up did not start in time")) from None
        yield up
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    if clean_stop:
        assert proc.returncode == 0, up.banner()[-3000:]
