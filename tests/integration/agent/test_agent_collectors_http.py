"""The app scrape and health probe collectors against real local HTTP servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from agent_peers import DemoApp

from agent.collectors.app import AppScrapeCollector
from agent.collectors.base import Sample
from agent.collectors.health import HealthProbeCollector
from agent.errors import CollectorError
from agent.http.client import HttpClient


@pytest.fixture
async def session() -> AsyncIterator[HttpClient]:
    async with HttpClient() as s:
        yield s


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels.items() >= labels.items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def test_app_scrape_keeps_names_and_labels(
    session: HttpClient, demo_app: tuple[DemoApp, str]
) -> None:
    _, url = demo_app
    collector = AppScrapeCollector(session, f"{url}/metrics", timeout_s=2, max_bytes=1 << 20)
    for _ in range(2):  # the second scrape runs on the parser's series cache
        samples = await collector.collect()
        assert _value(samples, "demo_requests_total", path="/") == 42
        assert _value(samples, "demo_latency_seconds_bucket", le="0.025") == 1
        assert _value(samples, "demo_latency_seconds_bucket", le="+Inf") == 3
        assert _value(samples, "demo_latency_seconds_count") == 3
        assert _value(samples, "demo_latency_seconds_sum") == pytest.approx(2.31)
        assert _value(samples, "haetae_app_scrape_up") == 1
        assert 0 < _value(samples, "haetae_app_scrape_duration_seconds") < 2
        own = {"haetae_app_scrape_up", "haetae_app_scrape_duration_seconds"}
        scraped = [s for s in samples if not s.name.startswith("haetae_app_")]
        assert _value(samples, "haetae_app_scrape_samples") == len(scraped)
        assert own < {s.name for s in samples}


async def _scrape_fails(collector: AppScrapeCollector, match: str) -> None:
    with pytest.raises(CollectorError, match=match) as err:
        await collector.collect()
    assert _value(err.value.samples, "haetae_app_scrape_up") == 0
    assert _value(err.value.samples, "haetae_app_scrape_duration_seconds") >= 0


async def test_app_scrape_failures_report_up_zero(
    session: HttpClient, demo_app: tuple[DemoApp, str], refused_url: str
) -> None:
    demo, url = demo_app
    collector = AppScrapeCollector(session, f"{url}/metrics", timeout_s=0.3, max_bytes=1 << 20)
    demo.metrics_status = 500
    await _scrape_fails(collector, "HTTP 500")
    demo.metrics_status, demo.metrics_delay_s = 200, 1.0
    await _scrape_fails(collector, "timed out")
    demo.metrics_delay_s = 0.0
    gone = AppScrapeCollector(session, f"{refused_url}/metrics", timeout_s=1, max_bytes=1 << 20)
    await _scrape_fails(gone, "failed")


async def test_app_scrape_caps_the_body(session: HttpClient, demo_app: tuple[DemoApp, str]) -> None:
    demo, url = demo_app
    demo.padding = 200_000
    collector = AppScrapeCollector(session, f"{url}/metrics", timeout_s=2, max_bytes=100_000)
    await _scrape_fails(collector, "max_bytes")


async def test_app_scrape_rejects_garbage(
    session: HttpClient, demo_app: tuple[DemoApp, str]
) -> None:
    demo, url = demo_app
    demo.registry = None  # type: ignore[assignment]  # generate_latest(None) would raise
    collector = AppScrapeCollector(session, f"{url}/notfound", timeout_s=2, max_bytes=1 << 20)
    await _scrape_fails(collector, "HTTP 404")


async def test_health_probe_up_down_and_timeout(
    session: HttpClient, demo_app: tuple[DemoApp, str], refused_url: str
) -> None:
    demo, url = demo_app
    probe = HealthProbeCollector(session, f"{url}/health", timeout_s=0.3)
    samples = await probe.collect()
    assert _value(samples, "haetae_app_health_up") == 1
    assert _value(samples, "haetae_app_health_status_code") == 200
    assert 0 < _value(samples, "haetae_app_health_latency_seconds") < 0.3

    demo.health_status = 503  # an answer: an observation, not a failed collection
    samples = await probe.collect()
    assert _value(samples, "haetae_app_health_up") == 0
    assert _value(samples, "haetae_app_health_status_code") == 503

    demo.health_status, demo.health_delay_s = 200, 1.0
    with pytest.raises(CollectorError, match="timed out") as err:
        await probe.collect()
    assert _value(err.value.samples, "haetae_app_health_up") == 0
    assert _value(err.value.samples, "haetae_app_health_status_code") == 0
    assert _value(err.value.samples, "haetae_app_health_latency_seconds") >= 0.3

    gone = HealthProbeCollector(session, f"{refused_url}/health", timeout_s=1)
    with pytest.raises(CollectorError) as err:
        await gone.collect()
    assert _value(err.value.samples, "haetae_app_health_up") == 0
