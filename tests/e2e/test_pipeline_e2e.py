"""End to end with real processes: demo app -> agent -> control plane -> Postgres -> query API.

The outage scenarios count samples: every report the agent made is stored exactly once, which
shows as contiguous report sequence numbers and one sample per report for a chosen series.
"""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request

import asyncpg
import orjson
import pytest
from e2e_stack import Stack, wait_for
from tests_e2e_support import SERIES, assert_exactly_once


def get_json(url: str, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return orjson.loads(resp.read())  # type: ignore[no-any-return]


def test_samples_flow_from_demo_app_to_query_api(stack: Stack) -> None:
    cp = stack.control_plane().start()
    stack.wait_control_plane(cp)
    stack.demo_app().start()
    agent = stack.agent(interval_s=1.0).start()

    def queried() -> list | None:  # type: ignore[type-arg]
        url = f"{stack.cp_url}/admin/monitoring/metrics?name={SERIES}&step=1s"
        try:
            series = get_json(url, stack.admin_headers)["series"]
        except Exception:
            return None
        return series if series and series[0]["points"] else None

    series = wait_for(queried, 30, f"{SERIES} samples in the query API")
    assert series[0]["agent"] == "e2e-agent"
    # host and app-scrape collectors both arrive
    for name in ("haetae_host_load1", "demo_http_requests_total", "haetae_process_up"):
        url = f"{stack.cp_url}/admin/monitoring/metrics?name={name}"
        assert wait_for(lambda u=url: get_json(u, stack.admin_headers)["series"], 15, name)
    agents = get_json(f"{stack.cp_url}/admin/agents", stack.admin_headers)["agents"]
    assert [a["state"] for a in agents if a["agent_id"] == "e2e-agent"] == ["up"]
    assert agent.alive()


@pytest.mark.slow
def test_control_plane_outage_loses_and_duplicates_nothing(stack: Stack) -> None:
    cp = stack.control_plane().start()
    stack.wait_control_plane(cp)
    stack.demo_app().start()
    agent = stack.agent(interval_s=1.0).start()
    asyncio.run(wait_reports(stack.db_dsn, 5))

    cp.kill(signal.SIGKILL)
    time.sleep(60)
    cp = stack.control_plane().start()
    stack.wait_control_plane(cp)
    wait_spool_drained(stack)
    agent.kill(signal.SIGTERM)
    # ~5 reports before, ~60 during the outage, a few after: all stored, once each
    cp_stats = asyncio.run(assert_exactly_once(stack.db_dsn, min_reports=65))
    assert cp_stats["max_gap_s"] < 3, cp_stats


@pytest.mark.slow
def test_agent_restart_with_full_spool_replays_everything(stack: Stack) -> None:
    stack.demo_app().start()
    # The control plane is not there yet: every report goes to the spool.
    agent = stack.agent(interval_s=1.0).start()
    time.sleep(8)
    agent.kill(signal.SIGKILL)
    cp = stack.control_plane().start()
    stack.wait_control_plane(cp)
    # A cold start: the agent enrols now and then replays what it spooled before.
    agent = stack.agent(interval_s=1.0).start()
    asyncio.run(wait_reports(stack.db_dsn, 12))
    wait_spool_drained(stack)
    agent.kill(signal.SIGTERM)
    asyncio.run(assert_exactly_once(stack.db_dsn, min_reports=12))


def wait_spool_drained(stack: Stack, timeout_s: float = 45) -> None:
    """The agent says its spool is empty: everything it collected was acknowledged."""

    def pending() -> float | None:
        url = f"http://127.0.0.1:{stack.agent_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("haetae_agent_spool_pending_reports "):
                return float(line.split()[1])
        return None

    wait_for(lambda: pending() == 0, timeout_s, "the agent's spool to drain")


async def wait_reports(dsn: str, n: int, timeout_s: float = 60) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await conn.fetchval("SELECT count(*) FROM ingested_reports") >= n:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"fewer than {n} reports stored after {timeout_s}s")
    finally:
        await conn.close()
