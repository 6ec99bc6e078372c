"""``query_range`` over 24 h at a 15 s step for 100 series: Haetae's Prometheus API against a
real Prometheus (Debian's 2.42 server) holding the same samples, in the same run.

    python benchmarks/promql_query_range.py [--series 100] [--hours 24] [--runs 10]

The samples (one counter per series, a point every 15 s) are written once: into Prometheus
with ``promtool tsdb create-blocks-from openmetrics`` (then a server is started on that data
directory), into Haetae by COPY into its samples table (an embedded PostgreSQL unless
``--dsn``). The control plane is the production app; the timed client runs in another
process and asks each server the same queries in turn; p50 and p95 of the wall time per
answer are printed, with Haetae's over Prometheus's as the ratio.

Prometheus and promtool come from Debian's ``prometheus`` package; without them the peer is
skipped and said so.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from control_plane.config import ControlPlaneConfig, PostgresConfig  # noqa: E402
from control_plane.store import apply_migrations, create_pool  # noqa: E402
from control_plane.store.partitions import create_partitions, day_of  # noqa: E402
from haetae.embedded import EmbeddedPostgres  # noqa: E402

STEP_S = 15
QUERIES = [
    "rate(bench_requests_total[5m])",
    "sum(rate(bench_requests_total[5m]))",
    "bench_requests_total",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def samples(series: int, start: int, end: int) -> list[tuple[int, list[tuple[int, float]]]]:
    """Per series, a counter rising by a series-specific amount every step."""
    out = []
    for i in range(series):
        per_step = 1.0 + (i % 7)
        points = [(t, per_step * n) for n, t in enumerate(range(start, end + 1, STEP_S))]
        out.append((i, points))
    return out


def write_openmetrics(path: Path, data: list[tuple[int, list[tuple[int, float]]]]) -> None:
    with path.open("w") as f:
        f.write("# TYPE bench_requests counter\n")
        for i, points in data:
            labels = f'{{instance="i-{i:03d}",agent="bench"}}'
            f.writelines(f"bench_requests_total{labels} {v} {t}\n" for t, v in points)
        f.write("# EOF\n")


async def load_postgres(dsn: str, data: list[tuple[int, list[tuple[int, float]]]]) -> None:
    pool = await create_pool(dsn, PostgresConfig(pool_min_size=1, pool_max_size=2))
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
            days = {day_of(t) for _, pts in data for t in (pts[0][0], pts[-1][0])}
            await create_partitions(conn, sorted(days))
            for i, points in data:
                labels = {"instance": f"i-{i:03d}"}
                sid = await conn.fetchval(
                    "INSERT INTO series (agent_id, name, labels, labels_key)"
                    " VALUES ('bench', 'bench_requests_total', $1, $2) RETURNING series_id",
                    labels,
                    f'{{"instance":"i-{i:03d}"}}',
                )
                rows = [(sid, dt.datetime.fromtimestamp(t, dt.UTC), v) for t, v in points]
                await conn.copy_records_to_table(
                    "samples", records=rows, columns=["series_id", "ts", "value"]
                )
            await conn.execute("ANALYZE samples; ANALYZE series")
    finally:
        await pool.close()


def serve_haetae(dsn: str, port: int, token_file: Path) -> None:
    """The production app on ``port`` (run in a child process)."""
    from aiohttp import web
    from pydantic import SecretStr

    from control_plane.app import create_app
    from haetae.config import load

    base = load(ControlPlaneConfig, "")
    config = base.model_copy(
        update={
            "postgres": base.postgres.model_copy(update={"dsn": SecretStr(dsn)}),
            "auth": base.auth.model_copy(update={"bootstrap_token_file": token_file}),
            "alerting": base.alerting.model_copy(update={"rules_dir": None}),
        }
    )
    web.run_app(create_app(config), host="127.0.0.1", port=port, access_log=None, print=None)


def timed(
    base: str, headers: dict[str, str], params: dict[str, Any], runs: int
) -> tuple[list[float], int]:
    """Wall times of ``runs`` answers, and how many series the last one held."""
    url = f"{base}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    times = []
    for n in range(runs + 1):
        req = urllib.request.Request(url, headers=headers)
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=600) as resp:
            body = resp.read()
        elapsed = time.perf_counter() - t0
        if n > 0:  # the first is a warm-up (caches, connections)
            times.append(elapsed)
        if b'"success"' not in body[:40]:
            raise RuntimeError(body[:300])
    return times, len(json.loads(body)["data"]["result"])


def client(jobs: list[tuple[str, dict[str, str], dict[str, Any], int]], out: Any) -> None:
    out.put([timed(*job) for job in jobs])


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def run(args: argparse.Namespace, server_dsn: str) -> None:
    end = int(time.time()) // STEP_S * STEP_S - 300
    start = end - args.hours * 3600
    data = samples(args.series, start, end)
    total = sum(len(p) for _, p in data)
    print(f"{args.series} series x {total // args.series} points = {total} samples")
    with tempfile.TemporaryDirectory(prefix="promql-bench-") as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        asyncio.run(load_postgres(server_dsn, data))
        print(f"Haetae: COPY into samples in {time.perf_counter() - t0:.1f} s")
        servers: list[tuple[str, str, dict[str, str]]] = []

        port = free_port()
        token_file = tmp / "admin.token"
        ctx = mp.get_context("spawn")
        haetae = ctx.Process(target=serve_haetae, args=(server_dsn, port, token_file))
        haetae.start()
        prom: subprocess.Popen[bytes] | None = None
        try:
            wait_http(f"http://127.0.0.1:{port}/health")
            token = token_file.read_text().strip()
            servers.append(
                ("haetae", f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"})
            )
            started = start_prometheus(tmp, data)
            if started is not None:
                prom, prom_url = started
                servers.append(("prometheus", prom_url, {}))
            jobs = []
            for expr in QUERIES:
                params = {"query": expr, "start": start, "end": end, "step": STEP_S}
                for _, url, headers in servers:
                    jobs.append((url, headers, params, args.runs))
            out: Any = ctx.Queue()
            proc = ctx.Process(target=client, args=(jobs, out))
            proc.start()
            results = out.get()
            proc.join()
        finally:
            haetae.terminate()
            haetae.join(30)
            if prom is not None:
                prom.terminate()
                prom.wait(30)
        report(servers, results, args)


def start_prometheus(
    tmp: Path, data: list[tuple[int, list[tuple[int, float]]]]
) -> tuple[subprocess.Popen[bytes], str] | None:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        print("Prometheus: not installed (apt-get install prometheus): peer skipped")
        return None
    om = tmp / "samples.om"
    write_openmetrics(om, data)
    tsdb = tmp / "tsdb"
    t0 = time.perf_counter()
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tsdb)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(
        f"Prometheus: promtool create-blocks-from openmetrics in {time.perf_counter() - t0:.1f} s"
    )
    config = tmp / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            "--storage.tsdb.retention.time=15d",
            "--log.level=warn",
            f"--web.listen-address={address}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://{address}/-/ready")
    return proc, f"http://{address}"


def report(
    servers: list[tuple[str, str, dict[str, str]]],
    results: list[tuple[list[float], int]],
    args: Any,
) -> None:
    print(f"\nquery_range, {args.hours} h at {STEP_S} s ({args.runs} runs each, after a warm-up)")
    print(f"{'query':44} {'server':11} {'p50 ms':>9} {'p95 ms':>9} {'ratio p95':>10}")
    it = iter(results)
    for expr in QUERIES:
        rows: list[tuple[str, list[float], int]] = []
        for name, _, _ in servers:
            times, count = next(it)
            rows.append((name, times, count))
        peer = next((times for name, times, _ in rows if name == "prometheus"), None)
        if len({n for _, _, n in rows}) != 1:
            print(f"  series counts differ: {[(name, n) for name, _, n in rows]}")
        for name, times, _ in rows:
            ratio = f"{p95(times) / p95(peer):.1f}x" if peer and name == "haetae" else ""
            print(
                f"{expr:44} {name:11} {statistics.median(times) * 1000:9.1f}"
                f" {p95(times) * 1000:9.1f} {ratio:>10}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get("HAETAE_BENCH_POSTGRES_DSN"))
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if args.dsn:
        run(args, args.dsn)
        return
    with tempfile.TemporaryDirectory(prefix="promql-bench-pg-") as d:
        pg = EmbeddedPostgres(Path(d) / "pg", cleanup="delete", database="postgres")
        dsn = pg.start()
        try:
            run(args, dsn)
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
