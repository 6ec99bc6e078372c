"""Alert latency, Haetae against Prometheus + Alertmanager, on the same flips in the same run.

A gauge (`demo_value` of the demo app) flips between 0 and 1; each system collects it every
second and runs the rule `demo_value > 0` (for: 0s). We measure from the flip (the demo app's
answer to `POST /demo/state`) to the webhook notification arriving at one local receiver, for
firing (0 -> 1) and resolved (1 -> 0), over N trials.

- Haetae: control plane (embedded Postgres + Redis under a temp dir), agent at a 1 s interval,
  route group_wait 0 s, group_interval 1 s, webhook channel to the receiver. The demo app pushes
  each change to the agent's `POST /v1/push` (it sends it on at once in an urgent report); the
  1 s collection runs as well. `--no-push` measures the pull path alone.
- Prometheus + Alertmanager (Debian `prometheus`, `prometheus-alertmanager`): scrape and
  evaluation every 1 s, group_wait 0s, group_interval 1s, webhook receiver; clustering off.
  Prometheus has no push path (the Pushgateway is scraped too): it sees the change at its next
  scrape.

    .venv/bin/python benchmarks/alert_latency.py [--trials 20] [--no-push]

A peer whose binaries are missing is skipped and said so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HAETAE = "haetae"
PROMETHEUS = "prometheus+alertmanager"
EXPR = "demo_value > 0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


def post_json(url: str, body: object) -> None:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        resp.read()


@dataclass
class Receiver:
    """The webhook receiver both systems notify: `/<system>` paths, arrivals timestamped."""

    events: list[tuple[float, str, str]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def serve(self) -> tuple[ThreadingHTTPServer, int]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.end_headers()
                try:
                    status = str(json.loads(body).get("status", ""))
                except ValueError:
                    status = ""
                with receiver.cond:
                    receiver.events.append((now, self.path.strip("/"), status))
                    receiver.cond.notify_all()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, int(server.server_address[1])

    def wait(self, systems: list[str], status: str, since: float, timeout_s: float) -> dict:
        """The first arrival per system with ``status`` after ``since`` (None: timed out)."""
        deadline = time.monotonic() + timeout_s
        found: dict[str, float | None] = {}
        with self.cond:
            while True:
                for t, system, st in self.events:
                    if t >= since and st == status and system in systems:
                        found.setdefault(system, t)
                left = deadline - time.monotonic()
                if len(found) == len(systems) or left <= 0:
                    return {s: found.get(s) for s in systems}
                self.cond.wait(left)


class Procs:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (the child keeps it)
        self.procs.append(
            subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        )

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def start_haetae(procs: Procs, tmp: Path, hook: str, demo_port: int, agent_port: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAETAE_")}
    cli = [sys.executable, "-m", "haetae.cli"]
    cp_port = free_port()
    rules = tmp / "haetae-rules"
    rules.mkdir()
    (rules / "bench.yml").write_text(
        "groups:\n  - name: bench\n    rules:\n"
        f"      - alert: DemoValue\n        expr: {EXPR}\n        for: 0s\n"
        # Flips every few seconds are the point here: flap control (which would hold the
        # alert firing after a few flips) is set out of reach.
        "        flap: {max_flips: 1000000, window: 1s}\n"
    )
    config = {
        "http": {"host": "127.0.0.1", "port": cp_port},
        "auth": {"enrolment_token": "bench", "bootstrap_token_file": str(tmp / "admin.token")},
        "logging": {"level": "WARNING"},
        "alerting": {
            "rules_dir": str(rules),
            "warmup_s": 0,
            "notify": {
                "receivers": [{"name": "bench", "webhook": [{"url": f"{hook}/{HAETAE}"}]}],
                "routes": [{"receiver": "bench", "group_wait_s": 0, "group_interval_s": 1}],
            },
        },
    }
    cfg_path = tmp / "haetae.yml"
    cfg_path.write_text(json.dumps(config))  # JSON is YAML
    procs.start(
        "control-plane",
        [*cli, "control-plane", "--config", str(cfg_path), "--data-dir", str(tmp / "cp")],
        env,
    )
    wait_http(f"http://127.0.0.1:{cp_port}/health", timeout_s=120)
    demo = f"http://127.0.0.1:{demo_port}"
    procs.start(
        "agent",
        [*cli, "agent"],
        env
        | {
            "HAETAE_AGENT_AGENT_ID": "bench",
            "HAETAE_AGENT_STATE_DIR": str(tmp / "agent"),
            "HAETAE_AGENT_INTERVAL_S": "1",
            "HAETAE_AGENT_CONTROL_PLANE_URL": f"http://127.0.0.1:{cp_port}",
            "HAETAE_AGENT_CONTROL_PLANE_ENROLMENT_TOKEN": "bench",
            "HAETAE_AGENT_HTTP_PORT": str(agent_port),
            "HAETAE_AGENT_PROCESS_CMDLINE_MATCH": f"demo-app --port {demo_port}",
            "HAETAE_AGENT_APP_METRICS_URL": f"{demo}/metrics",
            "HAETAE_AGENT_HEALTH_URL": f"{demo}/health",
        },
    )


def start_prometheus(procs: Procs, tmp: Path, hook: str, demo_port: int) -> bool:
    prom = shutil.which("prometheus")
    am = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if prom is None or am is None:
        print(
            "Prometheus + Alertmanager skipped: apt-get install prometheus prometheus-alertmanager"
        )
        return False
    prom_port, am_port = free_port(), free_port()
    (tmp / "am.yml").write_text(
        json.dumps(
            {
                "route": {
                    "receiver": "bench",
                    "group_by": ["alertname"],
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "bench",
                        "webhook_configs": [{"url": f"{hook}/{PROMETHEUS}", "send_resolved": True}],
                    }
                ],
            }
        )
    )
    procs.start(
        "alertmanager",
        [
            am,
            f"--config.file={tmp / 'am.yml'}",
            f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
    )
    (tmp / "rules.yml").write_text(
        json.dumps(
            {
                "groups": [
                    {
                        "name": "bench",
                        "interval": "1s",
                        "rules": [{"alert": "DemoValue", "expr": EXPR, "for": "0s"}],
                    }
                ]
            }
        )
    )
    (tmp / "prometheus.yml").write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp / "rules.yml")],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "demo",
                        "static_configs": [{"targets": [f"127.0.0.1:{demo_port}"]}],
                    }
                ],
            }
        )
    )
    procs.start(
        "prometheus",
        [
            prom,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
    )
    wait_http(f"http://127.0.0.1:{am_port}/-/ready")
    wait_http(f"http://127.0.0.1:{prom_port}/-/ready")
    return True


def run(trials: int, timeout_s: float, *, push: bool) -> dict[tuple[str, str], list[float]]:
    tmp = Path(tempfile.mkdtemp(prefix="haetae-alert-latency-"))
    receiver = Receiver()
    server, hook_port = receiver.serve()
    hook = f"http://127.0.0.1:{hook_port}"
    procs = Procs(tmp)
    demo_port, agent_port = free_port(), free_port()
    demo = f"http://127.0.0.1:{demo_port}"
    results: dict[tuple[str, str], list[float]] = {}
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HAETAE_")}
        if push:
            env["HAETAE_DEMO_PUSH_URL"] = f"http://127.0.0.1:{agent_port}/v1/push"
        procs.start(
            "demo-app",
            [sys.executable, "-m", "haetae.cli", "demo-app", "--port", str(demo_port)],
            env,
        )
        wait_http(f"{demo}/health")
        post_json(f"{demo}/demo/state", {"value": 0})
        start_haetae(procs, tmp, hook, demo_port, agent_port)
        systems = [HAETAE]
        if start_prometheus(procs, tmp, hook, demo_port):
            systems.append(PROMETHEUS)
        # Warm-up: both have scraped, evaluated and can notify (one full flip, not measured).
        for value, status in ((1, "firing"), (0, "resolved")):
            t0 = time.monotonic()
            post_json(f"{demo}/demo/state", {"value": value})
            got = receiver.wait(systems, status, t0, 90)
            missing = [s for s, t in got.items() if t is None]
            if missing:
                raise RuntimeError(
                    f"warm-up: no {status} notification from {missing}; logs in {tmp}"
                )
        for trial in range(trials):
            for value, status in ((1, "firing"), (0, "resolved")):
                # A random phase against the 1 s collection and evaluation ticks.
                time.sleep(1.5 + random.random())
                post_json(f"{demo}/demo/state", {"value": value})
                t0 = time.monotonic()
                got = receiver.wait(systems, status, t0, timeout_s)
                for system, t in got.items():
                    latency = float("inf") if t is None else t - t0
                    results.setdefault((system, status), []).append(latency)
            print(f"trial {trial + 1}/{trials}", file=sys.stderr)
        return results
    finally:
        procs.stop()
        server.shutdown()
        if os.environ.get("KEEP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=10.0, help="per flip, seconds")
    parser.add_argument(
        "--no-push",
        action="store_true",
        help="the demo app does not push to Haetae's agent: both systems pull every 1 s",
    )
    args = parser.parse_args()
    results = run(args.trials, args.timeout, push=not args.no_push)
    path = "pull only" if args.no_push else "push (+ 1 s pull)"
    print(f"\nHaetae path: {path}; Prometheus + Alertmanager: pull (it has no push path)")
    print(f"\n{'system':26}{'status':10}{'n':>4}{'p50 s':>8}{'p95 s':>8}{'max s':>8}{'lost':>6}")
    for (system, status), values in sorted(results.items()):
        ok = [v for v in values if v != float("inf")]
        lost = len(values) - len(ok)
        if not ok:
            print(f"{system:26}{status:10}{len(values):4d}{'-':>8}{'-':>8}{'-':>8}{lost:6d}")
            continue
        print(
            f"{system:26}{status:10}{len(values):4d}{statistics.median(ok):8.3f}"
            f"{pct(ok, 0.95):8.3f}{max(ok):8.3f}{lost:6d}"
        )
    for status in ("firing", "resolved"):
        ours = [v for v in results.get((HAETAE, status), []) if v != float("inf")]
        peer = [v for v in results.get((PROMETHEUS, status), []) if v != float("inf")]
        if ours and peer:
            print(
                f"{status}: haetae/prometheus p50 "
                f"{statistics.median(ours) / statistics.median(peer):.2f}x, "
                f"max {max(ours) / max(peer):.2f}x"
            )
    print("goal: p50 <= 0.30 s and max <= 0.60 s for firing and resolved alike")


if __name__ == "__main__":
    main()
