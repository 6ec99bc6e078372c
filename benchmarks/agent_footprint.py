"""Agent footprint against node_exporter, measured in the same run on the same machine.

For each of the two, after a warm-up: steady RSS, and CPU seconds per series per cycle, where a
cycle is one collection (node_exporter: one scrape, as Prometheus would do; Haetae's agent: one
collect + spool + gzip + POST to a real control plane), and series is the number of samples a
cycle produces.

    python benchmarks/agent_footprint.py [--cycles 60] [--interval 1] [--app-series 500]

The agent watches the demo app (about 140-180 samples a cycle with host and process metrics), or
with ``--app-series N`` a stand-in app served by this script that exposes N series (counters and
histogram buckets with realistic labels, a few hundred changing per scrape), so that the agent's
CPU per series can be compared at node_exporter's own series count.

node_exporter comes from Debian's `prometheus-node-exporter` package
(`apt-get install prometheus-node-exporter`); without it the peer is skipped and said so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from haetae.embedded import EmbeddedPostgres  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@dataclass
class Footprint:
    name: str
    rss_mib: float
    cpu_s: float
    cycles: int
    series: float

    @property
    def us_per_series_cycle(self) -> float:
        return self.cpu_s / (self.cycles * self.series) * 1e6


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def measure_node_exporter(cycles: int, interval: float, warmup: int) -> Footprint | None:
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        print("node_exporter not installed: apt-get install prometheus-node-exporter")
        return None
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_http(url)
        ps = psutil.Process(proc.pid)
        series = 0
        for i in range(warmup + cycles):
            if i == warmup:
                cpu0 = cpu_seconds(ps)
            start = time.monotonic()
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = resp.read().decode()
            series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
            time.sleep(max(0.0, interval - (time.monotonic() - start)))
        cpu = cpu_seconds(ps) - cpu0
        rss = ps.memory_info().rss / 2**20
        return Footprint("node_exporter", rss, cpu, cycles, series)
    finally:
        proc.terminate()
        proc.wait()


def serve_app(port: int, series: int) -> None:
    """A stand-in app: ``/metrics`` with ``series`` sample lines, ``/health``; keep-alive."""
    import http.server
    import random

    paths = [f"/api/v1/{name}" for name in ("users", "orders", "items", "search", "cart")]
    lines: list[tuple[str, float]] = []  # (series, value)
    families: list[tuple[str, str, int]] = []
    n = 0
    while n < series:
        f = len(families)
        kind = "histogram" if f % 3 == 2 else "counter"
        name = f"app_requests_{f}" + ("_seconds" if kind == "histogram" else "_total")
        start = len(lines)
        for path in paths:
            for status in ("200", "404", "500"):
                labels = f'method="GET",path="{path}",status="{status}"'
                if kind == "counter":
                    lines.append((f"{name}{{{labels}}}", 0.0))
                else:
                    for le in ("0.005", "0.01", "0.05", "0.1", "0.5", "1.0", "+Inf"):
                        lines.append((f'{name}_bucket{{{labels},le="{le}"}}', 0.0))
                    lines.append((f"{name}_sum{{{labels}}}", 0.0))
                    lines.append((f"{name}_count{{{labels}}}", 0.0))
        families.append((name, kind, len(lines) - start))
        n = len(lines)
    lines = lines[:series]
    values = [v for _, v in lines]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/metrics":
                for i in random.sample(range(len(values)), min(len(values), 200)):
                    values[i] += random.random()
                out, i = [], 0
                for name, kind, count in families:
                    out.append(f"# HELP {name} Requests.\n# TYPE {name} {kind}\n")
                    for j in range(i, min(i + count, len(lines))):
                        out.append(f"{lines[j][0]} {values[j]:.6g}\n")
                    i += count
                body = "".join(out).encode()
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            else:
                body, ctype = b"ok", "text/plain"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def measure_haetae_agent(
    cycles: int, interval: float, warmup: int, app_series: int = 0
) -> Footprint:
    import asyncio

    import asyncpg

    tmp = Path(tempfile.mkdtemp(prefix="haetae-bench-"))
    pg = EmbeddedPostgres(tmp / "pg", cleanup="delete")
    dsn = pg.start()
    cp_port, agent_port, demo_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAETAE_")}
    cmd = [sys.executable, "-m", "haetae.cli"]
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [*cmd, "control-plane", "--data-dir", str(tmp)],
                env=env
                | {
                    "HAETAE_POSTGRES_DSN": dsn,
                    "HAETAE_REDIS_URL": "redis://127.0.0.1:1",  # unused by the agent path
                    "HAETAE_HTTP_PORT": str(cp_port),
                    "HAETAE_AUTH_ENROLMENT_TOKEN": "bench",
                    "HAETAE_AUTH_BOOTSTRAP_TOKEN_FILE": str(tmp / "admin.token"),
                    "HAETAE_LOGGING_LEVEL": "WARNING",
                },
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_http(f"http://127.0.0.1:{cp_port}/health")
        if app_series:
            app_cmd = [sys.executable, __file__, "--serve-app", str(demo_port), str(app_series)]
            match = f"--serve-app {demo_port}"
        else:
            app_cmd = [*cmd, "demo-app", "--port", str(demo_port)]
            match = f"demo-app --port {demo_port}"
        procs.append(
            subprocess.Popen(app_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        wait_http(f"http://127.0.0.1:{demo_port}/health")
        demo = f"http://127.0.0.1:{demo_port}"
        agent = subprocess.Popen(
            [*cmd, "agent"],
            env=env
            | {
                "HAETAE_AGENT_AGENT_ID": "bench",
                "HAETAE_AGENT_STATE_DIR": str(tmp / "agent"),
                "HAETAE_AGENT_INTERVAL_S": str(interval),
                "HAETAE_AGENT_CONTROL_PLANE_URL": f"http://127.0.0.1:{cp_port}",
                "HAETAE_AGENT_CONTROL_PLANE_ENROLMENT_TOKEN": "bench",
                "HAETAE_AGENT_HTTP_PORT": str(agent_port),
                "HAETAE_AGENT_PROCESS_CMDLINE_MATCH": match,
                "HAETAE_AGENT_APP_METRICS_URL": f"{demo}/metrics",
                "HAETAE_AGENT_HEALTH_URL": f"{demo}/health",
            },
            stdout=open(tmp / "agent.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        procs.append(agent)
        ps = psutil.Process(agent.pid)
        time.sleep(warmup * interval)
        cpu0 = cpu_seconds(ps)

        async def reports() -> tuple[int, float]:
            conn = await asyncpg.connect(dsn)
            try:
                row = await conn.fetchrow(
                    "SELECT count(*) AS n, avg(sample_count) AS s FROM ingested_reports"
                )
                return int(row["n"]), float(row["s"] or 0)
            finally:
                await conn.close()

        n0, _ = asyncio.run(reports())
        time.sleep(cycles * interval)
        cpu = cpu_seconds(ps) - cpu0
        rss = ps.memory_info().rss / 2**20
        n1, series = asyncio.run(reports())
        return Footprint("haetae agent", rss, cpu, max(1, n1 - n0), series)
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            p.wait(20)
        pg.stop()
        if os.environ.get("KEEP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--app-series",
        type=int,
        default=0,
        help="watch a stand-in app exposing this many series instead of the demo app",
    )
    parser.add_argument("--serve-app", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_app:
        serve_app(*args.serve_app)
        return
    results = [
        r
        for r in (
            measure_node_exporter(args.cycles, args.interval, args.warmup),
            measure_haetae_agent(args.cycles, args.interval, args.warmup, args.app_series),
        )
        if r is not None
    ]
    print(f"\n{'':16}{'RSS MiB':>10}{'series':>9}{'cycles':>8}{'CPU s':>9}{'us/series/cycle':>17}")
    for r in results:
        print(
            f"{r.name:16}{r.rss_mib:10.1f}{r.series:9.0f}{r.cycles:8d}{r.cpu_s:9.3f}"
            f"{r.us_per_series_cycle:17.2f}"
        )
    if len(results) == 2:
        ne, ours = results
        print(
            f"\nratio haetae/node_exporter: RSS {ours.rss_mib / ne.rss_mib:.2f}x, "
            f"CPU per series per cycle {ours.us_per_series_cycle / ne.us_per_series_cycle:.2f}x"
        )
    print("goal: <= 40 MiB RSS and <= 15 us CPU per series per cycle")


if __name__ == "__main__":
    main()
