"""Remote write out against a real VictoriaMetrics: samples ingested through the writer arrive
exactly once, across an outage of the store and with two replicas forwarding."""

from __future__ import annotations

import time

from forward_support import Forwarding, make_report, wait_for
from victoria_support import Exported, VictoriaMetrics

SERIES = 20


def expected(agent: str, times: list[float]) -> Exported:
    out: Exported = {}
    for i in range(SERIES):
        key = tuple(sorted({"__name__": "fw_m", "agent": agent, "i": str(i), "dc": "x"}.items()))
        out[key] = [(round(t * 1000), i * 1000.0 + t % 1000) for t in times]
    return out


async def test_every_sample_arrives_once_across_an_outage_of_the_store(
    forwarding: Forwarding, victoria_metrics: VictoriaMetrics
) -> None:
    vm = victoria_metrics
    f = forwarding
    forwarder = await f.start_forwarder(vm.write_url, external_labels={"dc": "x"})
    base = round(time.time()) - 600.0
    before = [base + k for k in range(5)]
    for t in before:
        await f.ingestor.submit(make_report("web-1", t, SERIES))

    async def sent(n: int) -> bool:
        return f.count("haetae_forward_samples_total", outcome="sent") >= n

    await wait_for(lambda: sent(SERIES * 5), what="the first samples to be forwarded")
    assert await vm.export('{__name__="fw_m"}') == expected("web-1", before)

    # The store goes away; ingest goes on and the outbox holds what is committed.
    await vm.stop()
    during = [base + 100 + k for k in range(7)]
    for t in during:
        await f.ingestor.submit(make_report("web-1", t, SERIES))

    async def retried() -> bool:
        return f.count("haetae_forward_retries_total", reason="connection") >= 2

    await wait_for(retried, what="retries while the store is down")
    await forwarder.refresh()
    assert f.count("haetae_forward_pending_samples") == SERIES * 7
    assert f.count("haetae_forward_lag_seconds") > 0
    assert await f.outbox_rows() > 0

    await vm.start()
    await wait_for(lambda: sent(SERIES * 12), what="the backlog to be forwarded")
    await wait_for(lambda: _empty(f), what="the outbox to empty")
    await forwarder.refresh()
    assert f.count("haetae_forward_pending_samples") == 0
    assert f.count("haetae_forward_lag_seconds") == 0
    # Exactly once: VictoriaMetrics keeps duplicates (no -dedup.minScrapeInterval here).
    assert await vm.export('{__name__="fw_m"}') == expected("web-1", before + during)
    assert f.count("haetae_forward_samples_total", outcome="rejected") == 0
    assert f.count("haetae_forward_samples_total", outcome="dropped") == 0


async def _empty(f: Forwarding) -> bool:
    return await f.outbox_rows() == 0


async def test_two_replicas_forward_every_commit_once(
    forwarding: Forwarding, victoria_metrics: VictoriaMetrics
) -> None:
    f = forwarding
    # Small requests and several workers per replica: many claims race for the same rows.
    for _ in range(2):
        await f.start_forwarder(
            victoria_metrics.write_url,
            external_labels={"dc": "x"},
            max_samples_per_request=SERIES,
            max_in_flight=3,
        )
    base = round(time.time()) - 900.0
    times = {"web-1": [base + k for k in range(40)], "web-2": [base + 0.5 + k for k in range(40)]}
    for k in range(40):
        for agent, ts in times.items():
            await f.ingestor.submit(make_report(agent, ts[k], SERIES))
    await wait_for(lambda: _empty(f), what="the outbox to empty")
    got = await victoria_metrics.export('{__name__="fw_m"}')
    assert got == expected("web-1", times["web-1"]) | expected("web-2", times["web-2"])
    assert f.count("haetae_forward_samples_total", outcome="sent") == 2 * 40 * SERIES
