"""Remote write out against a scripted store: retries, poison batches, the outbox bound,
leases of other replicas, what goes on the wire, and the outbox committing with the samples."""

from __future__ import annotations

import base64
import time

import asyncpg
import pytest
from forward_support import FakeStore, Forwarding, make_report, wait_for

from control_plane.ingest import IngestUnavailable

SERIES = 5


async def _outbox_empty(f: Forwarding) -> bool:
    return await f.outbox_rows() == 0


async def test_5xx_is_retried_until_the_store_takes_the_batch(
    forwarding: Forwarding, fake_store: FakeStore
) -> None:
    f = forwarding
    fake_store.script = [(503, {}), (500, {}), (429, {"Retry-After": "0"})]
    await f.start_forwarder(fake_store.url)
    await f.ingestor.submit(make_report("web-1", time.time(), SERIES))
    await wait_for(lambda: _outbox_empty(f), what="the batch to be delivered")
    assert len(fake_store.requests) == 4  # the same batch, three refusals then accepted
    bodies = {m.SerializeToString() for _, m in fake_store.requests}
    assert len(bodies) == 1
    assert f.count("haetae_forward_retries_total", reason="server") == 2
    assert f.count("haetae_forward_retries_total", reason="throttled") == 1
    assert f.count("haetae_forward_samples_total", outcome="sent") == SERIES


async def test_a_4xx_batch_is_dropped_and_counted_not_retried(
    forwarding: Forwarding, fake_store: FakeStore
) -> None:
    f = forwarding
    fake_store.script = [(400, {})]
    await f.start_forwarder(fake_store.url)
    await f.ingestor.submit(make_report("web-1", time.time(), SERIES))
    await wait_for(lambda: _outbox_empty(f), what="the poison batch to leave the outbox")
    assert len(fake_store.requests) == 1
    assert f.count("haetae_forward_samples_total", outcome="rejected") == SERIES
    assert f.count("haetae_forward_samples_total", outcome="sent") == 0
    # the next batch goes through
    await f.ingestor.submit(make_report("web-1", time.time() + 1, SERIES))
    await wait_for(lambda: _outbox_empty(f), what="the next batch")
    assert len(fake_store.requests) == 2
    assert f.count("haetae_forward_samples_total", outcome="sent") == SERIES


async def test_connection_errors_are_retried_until_the_store_is_up(
    forwarding: Forwarding, fake_store: FakeStore
) -> None:
    f = forwarding
    await fake_store.stop()
    await f.start_forwarder(fake_store.url)
    await f.ingestor.submit(make_report("web-1", time.time(), SERIES))

    async def retried() -> bool:
        return f.count("haetae_forward_retries_total", reason="connection") >= 3

    await wait_for(retried, what="connection retries")
    assert await f.outbox_rows() == 1
    await fake_store.start()
    await wait_for(lambda: _outbox_empty(f), what="delivery once the store is up")
    assert len(fake_store.samples()) == SERIES


async def test_past_the_bound_the_oldest_samples_are_dropped_and_counted(
    forwarding: Forwarding, fake_store: FakeStore
) -> None:
    f = forwarding
    forwarder = await f.start_forwarder(fake_store.url, start=False, max_pending_samples=12)
    for k in range(5):  # 5 commits of 5 samples
        await f.ingestor.submit(make_report("web-1", time.time() + k, SERIES))
    await forwarder.refresh()
    assert f.count("haetae_forward_samples_total", outcome="dropped") == 15
    assert f.count("haetae_forward_pending_samples") == 10
    left = await f.pool.fetchval("SELECT sum(sample_count) FROM forward_outbox")
    assert left == 10
    # the newest were kept
    await forwarder.start()
    await wait_for(lambda: _outbox_empty(f), what="the rest to be delivered")
    times = sorted({t for _, t, _ in fake_store.samples()})
    assert len(times) == 2


async def test_rows_leased_by_another_replica_wait_for_its_lease_to_run_out(
    forwarding: Forwarding, fake_store: FakeStore
) -> None:
    f = forwarding
    await f.ingestor.submit(make_report("web-1", time.time(), SERIES))
    await f.pool.execute(
        "UPDATE forward_outbox SET claimed_by = 'dead', claimed_until = now() + interval '1 h'"
    )
    forwarder = await f.start_forwarder(fake_store.url)
    forwarder.wake()
    await _pause(0.5)
    assert fake_store.requests == []
    await f.pool.execute("UPDATE forward_outbox SET claimed_until = now() - interval '1 s'")
    await wait_for(lambda: _outbox_empty(f), what="the expired claim to be taken over")
    assert len(fake_store.samples()) == SERIES


async def test_stop_releases_the_claims_of_a_batch_still_failing(
    forwarding: Forwarding, fake_store: FakeStore
) -> None:
    f = forwarding
    fake_store.script = [(503, {})] * 1000
    forwarder = await f.start_forwarder(fake_store.url)
    await f.ingestor.submit(make_report("web-1", time.time(), SERIES))

    async def claimed() -> bool:
        return bool(
            await f.pool.fetchval(
                "SELECT count(*) FROM forward_outbox WHERE claimed_by IS NOT NULL"
            )
        )

    await wait_for(claimed, what="the claim")
    await wait_for(lambda: _requests(fake_store, 2), what="retries")
    await forwarder.stop()
    row = await f.pool.fetchrow("SELECT claimed_by, claimed_until FROM forward_outbox")
    assert row is not None and row["claimed_by"] is None and row["claimed_until"] is None


async def test_the_wire_carries_auth_remote_write_headers_and_labels(
    forwarding: Forwarding, fake_store: FakeStore
) -> None:
    f = forwarding
    await f.start_forwarder(
        fake_store.url,
        basic_auth_username="vm",
        basic_auth_password="s3cret",
        external_labels={"cluster": "prod", "i": "external loses"},
    )
    at = round(time.time()) - 60.25
    await f.ingestor.submit(make_report("web-2", at, 2))
    await wait_for(lambda: _outbox_empty(f), what="delivery")
    headers, _ = fake_store.requests[0]
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"vm:s3cret").decode()
    assert headers["Content-Encoding"] == "snappy"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    assert sorted(fake_store.samples()) == [
        (
            (("__name__", "fw_m"), ("agent", "web-2"), ("cluster", "prod"), ("i", str(i))),
            round(at * 1000),
            i * 1000.0 + at % 1000,
        )
        for i in range(2)
    ]


async def test_a_bearer_token_is_sent(forwarding: Forwarding, fake_store: FakeStore) -> None:
    await forwarding.start_forwarder(fake_store.url, bearer_token="tok-1")
    await forwarding.ingestor.submit(make_report("web-1", time.time(), 1))
    await wait_for(lambda: _outbox_empty(forwarding), what="delivery")
    assert fake_store.requests[0][0]["Authorization"] == "Bearer tok-1"


async def test_the_outbox_row_commits_with_the_samples_or_not_at_all(
    forwarding: Forwarding,
) -> None:
    f = forwarding
    report = make_report("web-1", time.time(), SERIES)
    await f.ingestor.submit(report)
    await f.ingestor.submit(report)  # a retry: a duplicate stores nothing, forwards nothing
    rows = await f.pool.fetch("SELECT sample_count FROM forward_outbox")
    assert [r["sample_count"] for r in rows] == [SERIES]

    async def fail(conn: asyncpg.Connection, new: object) -> None:
        raise asyncpg.InterfaceError("connection lost after the outbox row")

    f.ingestor.transaction_stages.append(fail)
    with pytest.raises(IngestUnavailable):
        await f.ingestor.submit(make_report("web-1", time.time() + 1, SERIES))
    assert await f.outbox_rows() == 1
    assert await f.pool.fetchval("SELECT count(*) FROM samples") == SERIES


async def _requests(store: FakeStore, n: int) -> bool:
    return len(store.requests) >= n


async def _pause(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_samples_of_a_pruned_series_are_counted_not_sent(
    forwarding: Forwarding, fake_store: FakeStore
) -> None:
    f = forwarding
    await f.ingestor.submit(make_report("web-1", time.time(), SERIES))
    # series GC removed two of them before the forwarder got there (a long outage)
    await f.pool.execute("DELETE FROM series WHERE labels->>'i' IN ('0', '1')")
    await f.start_forwarder(fake_store.url)
    await wait_for(lambda: _outbox_empty(f), what="the batch to leave the outbox")
    assert f.count("haetae_forward_samples_total", outcome="unknown_series") == 2
    assert f.count("haetae_forward_samples_total", outcome="sent") == SERIES - 2
    assert sorted(dict(labels)["i"] for labels, _, _ in fake_store.samples()) == ["2", "3", "4"]


async def test_more_series_than_the_label_cache_holds_are_all_sent(
    forwarding: Forwarding, fake_store: FakeStore
) -> None:
    f = forwarding
    now = time.time()
    for k, name in enumerate(("fw_a", "fw_b", "fw_c", "fw_a")):  # 1,800 series, cache 1,000
        await f.ingestor.submit(make_report("web-1", now + k, 600, name=name))
    await f.start_forwarder(
        fake_store.url, series_cache=1_000, max_samples_per_request=500, max_in_flight=3
    )
    await wait_for(lambda: _outbox_empty(f), what="every row to be sent")
    got = fake_store.samples()
    assert len(got) == len(set(got)) == 2_400
    assert f.count("haetae_forward_samples_total", outcome="unknown_series") == 0


async def test_a_claim_taken_over_meanwhile_is_left_to_the_new_owner(
    forwarding: Forwarding, fake_store: FakeStore
) -> None:
    f = forwarding
    fake_store.script = [(503, {})] * 1000
    await f.start_forwarder(fake_store.url)
    await f.ingestor.submit(make_report("web-1", time.time(), SERIES))
    await wait_for(lambda: _requests(fake_store, 1), what="the first attempt")
    # Its lease ran out (a long stall) and another replica took the row.
    await f.pool.execute("UPDATE forward_outbox SET claimed_by = 'other'")
    sent = len(fake_store.requests)
    await _pause(0.5)  # retries every 20-200 ms: the next one renews the lease first
    row = await f.pool.fetchrow("SELECT claimed_by FROM forward_outbox")
    assert row is not None and row["claimed_by"] == "other"  # neither deleted nor taken back
    after = len(fake_store.requests)
    assert after <= sent + 1  # at most a send already under way; then it stopped
    await _pause(0.3)
    assert len(fake_store.requests) == after
