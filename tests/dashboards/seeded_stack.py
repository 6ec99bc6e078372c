"""A seeded `haetae up`-like stack for the dashboard data test, and a real Prometheus scraping
the same targets.

Real processes: the control plane, the demo app, a link-analysis worker and three agents
(``dash-app`` watches the demo app: host, process, health, its /metrics; ``dash-cp`` scrapes
the control plane's /metrics, which hold the alerting and link-analyzer API series;
``dash-worker`` the worker's /metrics: queue depth, jobs), all reporting every second. Prometheus
(Debian ``prometheus``) scrapes the demo app, the control plane and the worker with the same
``agent`` labels, and the agent's host, process and probe collectors through a small exporter:
the agent ships those samples in its reports and serves only its own metrics on /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from e2e_stack import Proc, Stack, http_ok, wait_for
from tests_support import free_port

from agent.collectors.app import AppScrapeCollector
from agent.collectors.base import Collector, Sample
from agent.collectors.health import HealthProbeCollector
from agent.collectors.host import HostCollector
from agent.collectors.process import ProcessCollector
from agent.errors import CollectorError
from agent.http.client import HttpClient

PROMETHEUS = shutil.which("prometheus")
APP_AGENT = "dash-app"
CP_AGENT = "dash-cp"
WORKER_AGENT = "dash-worker"


def agent_proc(stack: Stack, agent_id: str, env: dict[str, str]) -> Proc:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HAETAE_")}
    proc = Proc(
        agent_id,
        ["agent"],
        base
        | {
            "HAETAE_AGENT_AGENT_ID": agent_id,
            "HAETAE_AGENT_STATE_DIR": str(stack.tmp / f"{agent_id}-state"),
            "HAETAE_AGENT_INTERVAL_S": "1",
            "HAETAE_AGENT_CONTROL_PLANE_URL": stack.cp_url,
            "HAETAE_AGENT_CONTROL_PLANE_ENROLMENT_TOKEN": stack.enrolment,
            "HAETAE_AGENT_HTTP_PORT": str(free_port()),
        }
        | env,
        stack.tmp / f"{agent_id}.log",
    )
    stack.procs.append(proc)
    return proc


def start_stack(stack: Stack) -> int:
    """Start everything; returns the link-analysis worker's /metrics port."""
    cp = stack.control_plane().start()
    stack.wait_control_plane(cp)
    stack.demo_app().start()
    worker_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAETAE_")}
    worker = Proc(
        "worker",
        ["worker", "--metrics-port", str(worker_port)],
        env | {"HAETAE_REDIS_URL": stack.redis_url, "HAETAE_LOGGING_LEVEL": "WARNING"},
        stack.tmp / "worker.log",
    )
    stack.procs.append(worker.start())
    demo = f"http://127.0.0.1:{stack.demo_port}"
    wait_for(lambda: http_ok(f"{demo}/health"), 30, "demo app /health")
    agent_proc(
        stack,
        APP_AGENT,
        {
            "HAETAE_AGENT_PROCESS_CMDLINE_MATCH": f"demo-app --port {stack.demo_port}",
            "HAETAE_AGENT_APP_METRICS_URL": f"{demo}/metrics",
            "HAETAE_AGENT_HEALTH_URL": f"{demo}/health",
        },
    ).start()
    agent_proc(stack, CP_AGENT, {"HAETAE_AGENT_APP_METRICS_URL": f"{stack.cp_url}/metrics"}).start()
    worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
    agent_proc(stack, WORKER_AGENT, {"HAETAE_AGENT_APP_METRICS_URL": worker_metrics}).start()
    wait_for(lambda: http_ok(worker_metrics), 30, "worker /metrics")
    return worker_port


# -- the agent's collectors as a scrape target ---------------------------------------------------


def exposition(samples: list[Sample]) -> str:
    lines = []
    for s in samples:
        labels = ",".join(
            f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
            for k, v in sorted(s.labels.items())
        )
        lines.append(f"{s.name}{{{labels}}} {s.value!r}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def collectors_exporter(stack: Stack) -> Iterator[str]:
    """The agent's host, process, health and app-scrape collectors (as ``dash-app`` runs them)
    served at ``http://<address>/metrics``; of the app scrape only the agent's own
    ``haetae_app_*`` samples, since Prometheus scrapes the app itself."""
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    demo = f"http://127.0.0.1:{stack.demo_port}"

    async def build() -> tuple[HttpClient, list[Collector]]:
        session = HttpClient()
        return session, [
            HostCollector(),
            ProcessCollector(cmdline_match=f"demo-app --port {stack.demo_port}"),
            HealthProbeCollector(session, f"{demo}/health", timeout_s=2.0),
            AppScrapeCollector(session, f"{demo}/metrics", timeout_s=2.0, max_bytes=1 << 22),
        ]

    session, collectors = asyncio.run_coroutine_threadsafe(build(), loop).result()

    async def collect() -> list[Sample]:
        out: list[Sample] = []
        for collector in collectors:
            try:
                samples = await collector.collect()
            except CollectorError as exc:
                samples = list(exc.samples)
            if isinstance(collector, AppScrapeCollector):
                samples = [s for s in samples if s.name.startswith("haetae_app_")]
            out.extend(samples)
        return out

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            samples = asyncio.run_coroutine_threadsafe(collect(), loop).result(timeout=10)
            body = exposition(samples).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", free_port()), Handler)
    server_thread = threading.Thread(target=server.serve_forever, daemon=True)
    server_thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(10)
        loop.close()


# -- Prometheus ----------------------------------------------------------------------------------


@contextlib.contextmanager
def prometheus(tmp: Path, targets: dict[str, tuple[str, str]]) -> Iterator[str]:
    """A Prometheus scraping each ``job: (host:port, agent)`` every second; yields its URL."""
    assert PROMETHEUS is not None
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [addr], "labels": {"agent": agent}}]}
            for job, (addr, agent) in targets.items()
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(f"{url}/-/ready"), 30, "prometheus /-/ready")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# -- the Prometheus HTTP API, as Grafana calls it --------------------------------------------------


class ApiMissing(Exception):
    """The endpoint answered 404: no Prometheus API there."""


def _post(url: str, form: dict[str, str], headers: dict[str, str] | None) -> dict[str, Any]:
    req = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise ApiMissing(url) from exc
        raise AssertionError(f"{form['query']}: {exc.code} {exc.read()[:500]!r}") from exc
    assert doc["status"] == "success", doc
    return doc


def instant_query(
    base_url: str, expr: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """POST /api/v1/query (Grafana's default method) at now; the result as a list of samples
    (a scalar becomes one)."""
    doc = _post(f"{base_url}/api/v1/query", {"query": expr, "time": f"{time.time():.3f}"}, headers)
    data = doc["data"]
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    assert data["resultType"] == "vector", data
    result: list[dict[str, Any]] = data["result"]
    return result


def range_query(
    base_url: str, expr: str, headers: dict[str, str] | None = None, *, seconds: float = 60
) -> list[dict[str, Any]]:
    """POST /api/v1/query_range over the last ``seconds`` at a 5 s step, aligned to the step
    as Grafana aligns it; the series that have at least one point."""
    step = 5
    end = time.time() // step * step
    form = {"query": expr, "start": str(end - seconds), "end": str(end), "step": str(step)}
    doc = _post(f"{base_url}/api/v1/query_range", form, headers)
    data = doc["data"]
    assert data["resultType"] == "matrix", data
    return [s for s in data["result"] if s["values"]]


def label_values(
    base_url: str, label: str, match: str, headers: dict[str, str] | None = None
) -> list[str]:
    """GET /api/v1/label/<label>/values?match[]=... : how Grafana fills a
    ``label_values(<match>, <label>)`` variable."""
    now = time.time()
    window = {"start": f"{now - 3600:.3f}", "end": f"{now:.3f}"}
    params = urllib.parse.urlencode({"match[]": match, **window})
    req = urllib.request.Request(
        f"{base_url}/api/v1/label/{label}/values?{params}", headers=headers or {}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        doc = json.loads(resp.read())
    assert doc["status"] == "success", doc
    values: list[str] = doc["data"]
    return values
