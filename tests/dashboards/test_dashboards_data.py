"""Every panel's query returns data on a seeded stack: through Haetae's Prometheus API (what the
provisioned Haetae data source calls, with a Bearer token) and from a real Prometheus scraping
the same targets (the other provisioned data source)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import yaml
from board_checks import ROOT, all_queries
from e2e_stack import Stack
from seeded_stack import (
    APP_AGENT,
    CP_AGENT,
    PROMETHEUS,
    WORKER_AGENT,
    ApiMissing,
    collectors_exporter,
    instant_query,
    label_values,
    prometheus,
    range_query,
    start_stack,
)
from tests_support import with_database

from dashboards.queries import PanelQuery, defaults, instantiate, load_boards, variable_queries

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus (Debian: prometheus) missing"
)

DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/haetae.yaml"
# Long enough for two samples of every series in a 1 m $__rate_interval at 1 s intervals, and
# for the control plane's 10 s cache self-report; polled, so usually less.
DATA_DEADLINE_S = 40.0


@dataclass
class Seeded:
    stack: Stack
    prometheus_url: str


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, pg_server_dsn: str, pg_template: str, redis_url: str
) -> Iterator[Seeded]:
    tmp = tmp_path_factory.mktemp("dashboards")
    name = f"haetae_dash_{uuid.uuid4().hex[:12]}"
    asyncio.run(_sql(pg_server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    stack = Stack(tmp, with_database(pg_server_dsn, name), redis_url)
    try:
        worker_port = start_stack(stack)
        with collectors_exporter(stack) as exporter:
            targets = {
                "demo-app": (f"127.0.0.1:{stack.demo_port}", APP_AGENT),
                "agent-collectors": (exporter, APP_AGENT),
                "control-plane": (f"127.0.0.1:{stack.cp_port}", CP_AGENT),
                "worker": (f"127.0.0.1:{worker_port}", WORKER_AGENT),
            }
            with prometheus(tmp, targets) as url:
                yield Seeded(stack, url)
    finally:
        for p in reversed(stack.procs):
            p.kill(signal.SIGTERM)
        asyncio.run(_sql(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _sql(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


# The agent that feeds each board in the seeded stack: a board with `agent` set to it (not All)
# must show data as well.
BOARD_AGENT = {
    "haetae-fleet": APP_AGENT,
    "haetae-app": APP_AGENT,
    "haetae-cache": APP_AGENT,
    "haetae-alerting": CP_AGENT,
    "haetae-link-analyzer": WORKER_AGENT,
}


def _queries() -> list[tuple[PanelQuery, str]]:
    """Every query with the variables at their defaults (agent: All), and again with the
    board's agent picked."""
    picked = [
        (q, instantiate(q.expr, defaults(board) | {"agent": BOARD_AGENT[uid]}))
        for uid, board in load_boards().items()
        for q, _ in all_queries()
        if q.board == uid
    ]
    return [*all_queries(), *picked]


def _without_data(base_url: str, headers: dict[str, str] | None = None) -> list[PanelQuery]:
    """Poll every query as Grafana sends it (instant, or a range over the last minute) until
    each returns data; the ones that never did."""

    def has_data(q: PanelQuery, expr: str) -> bool:
        if q.instant:
            return bool(instant_query(base_url, expr, headers))
        return bool(range_query(base_url, expr, headers))

    pending = _queries()
    deadline = time.monotonic() + DATA_DEADLINE_S
    while pending and time.monotonic() < deadline:
        pending = [(q, e) for q, e in pending if not has_data(q, e)]
        if pending:
            time.sleep(1.0)
    return [q for q, _ in pending]


def _variables_without_their_agent(
    base_url: str, headers: dict[str, str] | None = None
) -> list[str]:
    wrong = []
    for uid, board in load_boards().items():
        for q in variable_queries(uid, board):
            if q.panel != "$agent":
                continue
            match = instantiate(q.expr, defaults(board))
            got = label_values(base_url, "agent", match, headers)
            if BOARD_AGENT[uid] not in got:
                wrong.append(f"{q}: {got}")
    return wrong


def test_every_query_returns_data_from_prometheus(seeded: Seeded) -> None:
    assert not instant_query(seeded.prometheus_url, "haetae_host_load_1")  # can be empty
    missing = _without_data(seeded.prometheus_url)
    assert not missing, "no data from Prometheus for:\n" + "\n".join(map(str, missing))
    assert not _variables_without_their_agent(seeded.prometheus_url)


def test_every_query_returns_data_from_haetae(seeded: Seeded) -> None:
    stack = seeded.stack
    try:
        instant_query(stack.cp_url, "1", stack.admin_headers)
    except ApiMissing:
        pytest.skip("the control plane has no /api/v1/query yet (control_plane/promapi)")
    assert not instant_query(stack.cp_url, "haetae_host_load_1", stack.admin_headers)
    missing = _without_data(stack.cp_url, stack.admin_headers)
    logs = "\n".join(p.log()[-1500:] for p in stack.procs if p.name in (APP_AGENT, CP_AGENT))
    assert not missing, "no data from Haetae for:\n" + "\n".join(map(str, missing)) + "\n" + logs
    assert not _variables_without_their_agent(stack.cp_url, stack.admin_headers)


def test_haetae_api_is_what_the_data_source_expects(seeded: Seeded) -> None:
    """The Authorization header is needed, and the version Grafana is told (which makes it use
    the label values API for variables) is the one Haetae reports."""
    stack = seeded.stack
    try:
        instant_query(stack.cp_url, "1", stack.admin_headers)
    except ApiMissing:
        pytest.skip("the control plane has no /api/v1/query yet (control_plane/promapi)")
    with pytest.raises(AssertionError, match="401"):
        instant_query(stack.cp_url, "1")
    req = urllib.request.Request(
        f"{stack.cp_url}/api/v1/status/buildinfo", headers=stack.admin_headers
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        version = json.loads(resp.read())["data"]["version"]
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    haetae = next(d for d in provisioned if d["uid"] == "haetae")
    assert haetae["jsonData"]["prometheusVersion"] == version


def test_prometheus_sees_the_targets_labelled_as_haetae_does(seeded: Seeded) -> None:
    up = instant_query(seeded.prometheus_url, "up == 1")
    assert {(s["metric"]["job"], s["metric"]["agent"]) for s in up} >= {
        ("demo-app", APP_AGENT),
        ("agent-collectors", APP_AGENT),
        ("control-plane", CP_AGENT),
        ("worker", WORKER_AGENT),
    }, up


def _series(result: list[dict[str, Any]]) -> set[frozenset[tuple[str, str]]]:
    # Prometheus adds the scrape's job and instance; Haetae knows the target as the agent.
    return {
        frozenset((k, v) for k, v in s["metric"].items() if k not in ("job", "instance"))
        for s in result
    }


def test_both_sources_show_the_same_series(seeded: Seeded) -> None:
    """A board looks the same on either data source: with the board's agent picked, each query
    returns the same label sets from Haetae as from Prometheus."""
    stack = seeded.stack
    try:
        instant_query(stack.cp_url, "1", stack.admin_headers)
    except ApiMissing:
        pytest.skip("the control plane has no /api/v1/query yet (control_plane/promapi)")
    # Both have caught up (each query has data) before the comparison.
    _without_data(stack.cp_url, stack.admin_headers)
    _without_data(seeded.prometheus_url)
    different = []
    picked = _queries()[len(all_queries()) :]
    # Panels only: a variable lists every agent (dash-cp's host series are Haetae's alone).
    for q, expr in [(q, e) for q, e in picked if q.ref_id != "var"]:
        ours = _series(instant_query(stack.cp_url, expr, stack.admin_headers))
        theirs = _series(instant_query(seeded.prometheus_url, expr))
        if ours != theirs:
            different.append(f"{q}\n  haetae only: {ours - theirs}\n  prom only: {theirs - ours}")
    assert not different, "\n".join(different)
