"""``haetae up``: the whole system on one machine, supervised, with zero configuration.

Backing servers are embedded unless DSNs are given; the control plane, one agent and the demo
app run as child processes (the same code path as separate deployments). Every process started
here, the embedded servers included, is restarted with backoff if it dies (with a console line),
dies with ``haetae up`` even on SIGKILL, and is stopped in reverse order on Ctrl-C or SIGTERM.
Child output goes to size-bounded logs under ``<data dir>/logs``.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from haetae.backing import backing_services
from haetae.logs import RotatingLogFile, pump_output, setup_logging
from haetae.private_files import private_dir, write_private_file
from haetae.procs import die_with_parent
from haetae.supervisor import Supervisor


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    control_plane_port: int = 8340
    agent_port: int = 8341
    demo_port: int = 8342
    peers_port: int = 8343
    interval_s: float = 5.0


@dataclass
class Child:
    """A ``haetae`` subcommand run as a supervised child, its output in a rotating log."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self._log = RotatingLogFile(self.log_path)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "haetae.cli", *self.args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        pump_output(self.proc.stdout, self._log, self.name)

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, timeout_s: float = 15.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    write_private_file(path, value + "\n")
    return value


def _alerting_config(opts: UpOptions, cp_url: str) -> dict[str, object]:
    """The control plane's alerting section for the local tour: the default route notifies an
    on-call receiver (Slack + KakaoTalk AlimTalk, both at the local peers) and opens an incident
    escalated to a second level after a minute unless someone acknowledges it."""
    peers = f"http://{opts.host}:{opts.peers_port}"

    def receiver(name: str, channel: str, phone: str) -> dict[str, object]:
        return {
            "name": name,
            "slack": [
                {"token": "xoxb-local-peers", "channel": channel, "base_url": f"{peers}/slack/api/"}
            ],
            "alimtalk": [
                {
                    "app_key": "local-peers",
                    "secret_key": "local-peers",
                    "sender_key": "local-peers",
                    "template_code": "HAETAE_ALERT",
                    "template_parameters": {
                        "status": "{status}",
                        "title": "{title}",
                        "link": "{url}",
                    },
                    "to": phone,
                    "base_url": peers,
                }
            ],
        }

    return {
        "external_url": cp_url,  # incident-page links in the messages
        "notify": {
            # Slack allows one message a second per channel; the local peers have no such limit,
            # so an incident's edits in place are not spaced a second apart.
            "slack_min_send_interval_s": 0,
            "receivers": [
                receiver("on-call", "#alerts", "01000000001"),
                receiver("team-lead", "#alerts-escalated", "01000000002"),
            ],
            "routes": [
                {
                    "receiver": "on-call",
                    "escalation_policy": "local-demo",
                    "group_by": ["alertname", "agent"],
                    "group_wait_s": 0,
                    "group_interval_s": 10,
                }
            ],
            "escalation_policies": [
                {
                    "name": "local-demo",
                    "levels": [
                        {"receivers": ["on-call"], "wait_s": ESCALATION_WAIT_S},
                        {"receivers": ["team-lead"], "wait_s": ESCALATION_WAIT_S},
                    ],
                    # Unacknowledged, it starts over once at level 1 after level 2's wait.
                    "repeat": 1,
                }
            ],
        },
    }


ESCALATION_WAIT_S = 60.0


def write_control_plane_config(opts: UpOptions, cp_url: str, path: Path) -> None:
    """(Re)write the generated control-plane config; HAETAE_* variables still override it.
    It holds channel credentials, so it is owner-only from the moment it exists."""
    import yaml

    text = yaml.safe_dump({"alerting": _alerting_config(opts, cp_url)}, sort_keys=False)
    write_private_file(
        path,
        "# Generated by `haetae up` at each start (edits are overwritten); HAETAE_* variables\n"
        "# override it. Notifications go to the local peers (`haetae demo-peers`).\n" + text,
    )


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def run_up(opts: UpOptions) -> int:
    setup_logging("INFO", json_format=False, service="haetae-up")
    # Tokens, generated config with credentials and the databases: owner-only.
    data_dir = private_dir(opts.data_dir.resolve())
    logs_dir = private_dir(data_dir / "logs")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    with backing_services(
        data_dir,
        postgres_dsn=os.environ.get("HAETAE_POSTGRES_DSN") or None,
        redis_url=os.environ.get("HAETAE_REDIS_URL") or None,
        logs_dir=logs_dir,
    ) as backing:
        enrolment = _read_or_create_secret(data_dir / "enrolment.token")
        base_env = dict(os.environ)
        cp_url = f"http://{opts.host}:{opts.control_plane_port}"
        demo_url = f"http://{opts.host}:{opts.demo_port}"
        peers_url = f"http://{opts.host}:{opts.peers_port}"
        cp_config = data_dir / "control-plane.yaml"
        write_control_plane_config(opts, cp_url, cp_config)
        peers = Child(
            "demo-peers",
            ["demo-peers", "--host", opts.host, "--port", str(opts.peers_port)],
            base_env,
            log_path=logs_dir / "demo-peers.log",
        )
        # First, so the control plane's first notifications find them.
        peers.start()
        control_plane = Child(
            "control-plane",
            ["control-plane", "--data-dir", str(data_dir), "--config", str(cp_config)],
            base_env
            | {
                "HAETAE_POSTGRES_DSN": backing.postgres_dsn,
                "HAETAE_REDIS_URL": backing.redis_url,
                "HAETAE_AUTH_ENROLMENT_TOKEN": enrolment,
                "HAETAE_AUTH_BOOTSTRAP_TOKEN_FILE": str(data_dir / "admin.token"),
                "HAETAE_HTTP_HOST": opts.host,
                "HAETAE_HTTP_PORT": str(opts.control_plane_port),
            },
            log_path=logs_dir / "control-plane.log",
        )
        demo = Child(
            "demo-app",
            ["demo-app", "--host", opts.host, "--port", str(opts.demo_port)],
            # State changes are pushed to the agent at once (docs/operations.md).
            base_env | {"HAETAE_DEMO_PUSH_URL": f"http://{opts.host}:{opts.agent_port}/v1/push"},
            log_path=logs_dir / "demo-app.log",
        )
        worker = Child(
            "worker",
            ["worker"],
            base_env | {"HAETAE_REDIS_URL": backing.redis_url},
            log_path=logs_dir / "worker.log",
        )
        # Embedded servers first: the supervisor stops in reverse order, so they stop last.
        supervisor = Supervisor([*backing.servers, peers])
        control_plane.start()
        if not _wait_http(f"{cp_url}/health", 60, control_plane.proc):
            print(
                f"haetae: the control plane did not start; see {control_plane.log_path}",
                file=sys.stderr,
            )
            control_plane.stop()
            peers.stop()
            return 1
        supervisor.add(control_plane)
        demo.start()
        supervisor.add(demo)
        worker.start()
        supervisor.add(worker)
        _wait_http(f"{demo_url}/health", 20, demo.proc)
        _wait_http(f"{peers_url}/health", 20, peers.proc)
        assert demo.proc is not None
        agent = Child(
            "agent",
            ["agent"],
            base_env
            | {
                "HAETAE_AGENT_AGENT_ID": "local-demo",
                "HAETAE_AGENT_STATE_DIR": str(data_dir / "agent"),
                "HAETAE_AGENT_INTERVAL_S": str(opts.interval_s),
                "HAETAE_AGENT_CONTROL_PLANE_URL": cp_url,
                "HAETAE_AGENT_CONTROL_PLANE_ENROLMENT_TOKEN": enrolment,
                "HAETAE_AGENT_HTTP_HOST": opts.host,
                "HAETAE_AGENT_HTTP_PORT": str(opts.agent_port),
                # By command line, so the agent finds the demo app again after a restart.
                "HAETAE_AGENT_PROCESS_CMDLINE_MATCH": (
                    f"demo-app --host {opts.host} --port {opts.demo_port}"
                ),
                "HAETAE_AGENT_APP_METRICS_URL": f"{demo_url}/metrics",
                "HAETAE_AGENT_HEALTH_URL": f"{demo_url}/health",
                # The host's L1 (<state_dir>/l1.sock) on the shared L2: cache warm-ups reach it.
                "HAETAE_AGENT_CACHE_ENABLED": "true",
                "HAETAE_AGENT_CACHE_REDIS_URL": backing.redis_url,
            },
            log_path=logs_dir / "agent.log",
        )
        agent.start()
        supervisor.add(agent)
        admin_token = (data_dir / "admin.token").read_text().strip()
        _print_banner(opts, cp_url, demo_url, peers_url, data_dir, admin_token, backing.embedded)
        try:
            supervisor.run(stop)
        finally:
            supervisor.stop_all()
    print("haetae: stopped", flush=True)
    return 0


def _print_banner(
    opts: UpOptions,
    cp_url: str,
    demo_url: str,
    peers_url: str,
    data_dir: Path,
    token: str,
    embedded: tuple[str, ...],
) -> None:
    agent_url = f"http://{opts.host}:{opts.agent_port}"
    servers = ", ".join(embedded) if embedded else "none (using HAETAE_* DSNs)"
    print(
        f"""
Haetae is up.
  control plane  {cp_url}   (/health/detailed, /metrics, /admin/*)
  agent          {agent_url}/metrics   reports every {opts.interval_s:g}s as 'local-demo'
  demo app       {demo_url}   (/metrics, /health, POST /demo/state)
  worker         link-analysis jobs from Redis (POST /api/v1/analyze/async)
  local peers    {peers_url}   (Slack and KakaoTalk AlimTalk stand-ins; /api/notifications)
  incidents      {cp_url}/incidents   (sign in with the admin token below; config:
                 {data_dir / "control-plane.yaml"})
  embedded       {servers}; data and logs in {data_dir}
  admin token    {token}
                 (saved in {data_dir / "admin.token"}, mode 600)

Try:
  curl -s -H "Authorization: Bearer $(cat {data_dir / "admin.token"})" \\
    '{cp_url}/admin/monitoring/metrics?name=haetae_host_load1'
  curl -s -H "Authorization: Bearer $(cat {data_dir / "admin.token"})" {cp_url}/admin/agents

The acceptance case: drop the demo app's cache hit ratio, watch the notifications arrive.
  curl -X POST {demo_url}/demo/state -d '{{"state":"degraded"}}'
  then open {peers_url}/ : Slack and KakaoTalk messages arrive within a second of the
  CacheHitRatioDrop alert firing. The rule compares the last 5 minutes with the last hour: with
  10 minutes of history it fires ~40 s after the drop (with 5 minutes, ~90 s). Each incident
  message links to the incident page ({cp_url}/incidents/ID?exp=...&sig=...);
  unacknowledged, it escalates to the second level (#alerts-escalated) after
  {ESCALATION_WAIT_S:g}s; "Acknowledge" on that page stops it.
  curl -X POST {demo_url}/demo/state -d '{{"state":"healthy"}}'   # and it resolves

Ctrl-C stops everything.
""",
        flush=True,
    )
