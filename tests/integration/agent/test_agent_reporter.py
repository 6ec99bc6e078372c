"""The reporter against a real local control plane: enrolment, outage and recovery, poison
reports, lost answers, and replay after a restart. Every report must arrive once, in order."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from agent_peers import ENROLMENT_TOKEN, FakeControlPlane
from prometheus_client import CollectorRegistry

from agent.backoff import Backoff
from agent.client import ControlPlaneClient
from agent.collectors.base import Sample
from agent.config import AgentConfig
from agent.dead_letter import DeadLetters
from agent.http.client import HttpClient
from agent.report import decode_report
from agent.reporter import Reporter, last_spooled_seq
from agent.runner import CollectorRun, Cycle
from agent.spool import Spool
from agent.state import SeqAllocator, TokenStore


@pytest.fixture
async def session() -> AsyncIterator[HttpClient]:
    async with HttpClient() as s:
        yield s


class Harness:
    """A reporter with its spool and registry, built the way the agent builds them."""

    def __init__(
        self,
        session: HttpClient,
        state: Path,
        url: str,
        *,
        agent_id: str = "web-1",
        **link: Any,
    ) -> None:
        link = {"url": url, "enrolment_token": ENROLMENT_TOKEN, "request_timeout_s": 2} | link
        self.config = AgentConfig(agent_id=agent_id, state_dir=state, control_plane=link)
        self.registry = CollectorRegistry()
        self.spool = Spool(state / "spool", max_bytes=1 << 20, segment_bytes=64 * 1024)
        self.tokens = TokenStore(state / "agent.token", agent_id)
        self.seq = SeqAllocator(state / "report.seq", at_least=last_spooled_seq(self.spool))
        client = ControlPlaneClient(
            self.config, session=session, tokens=self.tokens, registry=self.registry
        )
        self.reporter = Reporter(
            client=client,
            spool=self.spool,
            seq=self.seq,
            registry=self.registry,
            dead_letters=DeadLetters(state / "dead-letter.jsonl", max_bytes=4096),
            backoff=Backoff(base_s=0.01, cap_s=0.05),
        )
        self.dead_letters = DeadLetters(state / "dead-letter.jsonl", max_bytes=4096)

    async def submit(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            cycle = Cycle(
                time.time(),
                [Sample("x_value", {"i": str(i)}, float(i))],
                [CollectorRun("x", True, 0.001, 1)],
            )
            ids.append(await self.reporter.submit(cycle))
        return ids

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        assert value is not None, name
        return value

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.reporter.start()
        try:
            yield
        finally:
            await self.reporter.close(1.0)

    def close(self) -> None:
        self.spool.close()
        self.seq.close()


async def _until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not predicate():  # noqa: ASYNC110  # the spool has no event to wait on
            await asyncio.sleep(0.01)


def _assert_once_in_order(cp: FakeControlPlane, ids: list[str]) -> None:
    assert [r["report_id"] for r in cp.stored] == ids
    assert cp.seqs == sorted(cp.seqs) and len(set(cp.seqs)) == len(cp.seqs)


async def test_enrols_once_and_reuses_the_token_after_restart(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, url = control_plane
    first = Harness(session, tmp_path, url)
    ids = await first.submit(1)
    assert await first.reporter.drain()
    assert cp.enrolments == 1
    token_file = tmp_path / "agent.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert first.tokens.load() in cp.tokens
    first.close()

    second = Harness(session, tmp_path, url)  # a restart: same state directory
    ids += await second.submit(1)
    assert await second.reporter.drain()
    assert cp.enrolments == 1
    _assert_once_in_order(cp, ids)
    assert cp.seqs == [1, 2]  # numbering continues across the restart
    assert second.metric("haetae_agent_reports_sent_total") == 1
    assert second.metric("haetae_agent_last_report_success_timestamp_seconds") > 0
    second.close()


async def test_outage_then_recovery_delivers_every_report_once_in_order(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, url = control_plane
    h = Harness(session, tmp_path, url)
    cp.fail_next = [503] * 6
    async with h.running():
        ids = await h.submit(20)
        await cp.wait_for(20)
        await _until(lambda: h.spool.pending_count == 0)
    _assert_once_in_order(cp, ids)
    assert cp.duplicates == 0
    assert h.metric("haetae_agent_reports_failed_total", reason="server_error") == 6
    assert h.metric("haetae_agent_reports_sent_total") == 20
    assert h.spool.pending_count == 0
    assert h.reporter.status().consecutive_failures == 0
    h.close()


async def test_backlog_drains_without_waiting_between_reports(
    session: HttpClient,
    control_plane: tuple[FakeControlPlane, str],
    refused_url: str,
    tmp_path: Path,
) -> None:
    down = Harness(session, tmp_path, refused_url)
    ids = await down.submit(50)
    assert not await down.reporter.drain()
    assert down.metric("haetae_agent_reports_failed_total", reason="connection_error") == 1
    down.close()

    cp, url = control_plane
    up = Harness(session, tmp_path, url)  # restart with a full spool, control plane back
    assert up.spool.pending_count == 50
    started = time.monotonic()
    async with up.running():
        await cp.wait_for(50)
    assert time.monotonic() - started < 5
    _assert_once_in_order(cp, ids)
    assert cp.seqs == list(range(1, 51))
    up.close()


async def test_lost_answer_is_resent_and_stored_once(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, url = control_plane
    h = Harness(session, tmp_path, url)
    cp.lose_answer_once = True  # stored, but the agent sees a 500
    ids = await h.submit(3)
    assert not await h.reporter.drain()
    assert await h.reporter.drain()
    assert cp.duplicates == 1
    _assert_once_in_order(cp, ids)
    h.close()


async def test_timeout_is_retried_and_idempotent(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, url = control_plane
    h = Harness(session, tmp_path, url, request_timeout_s=0.2)
    assert await h.reporter.drain()  # nothing to send yet
    ids = await h.submit(2)
    cp.delay_s = 0.5
    assert not await h.reporter.drain()
    assert h.metric("haetae_agent_reports_failed_total", reason="timeout") == 1
    cp.delay_s = 0.0
    await asyncio.sleep(0.5)  # let the slow request finish server-side (it is stored)
    assert await h.reporter.drain()
    _assert_once_in_order(cp, ids)
    h.close()


async def test_poison_report_is_dead_lettered_and_the_spool_moves_on(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, url = control_plane
    h = Harness(session, tmp_path, url)
    cp.reject_seqs = {2}
    ids = await h.submit(3)
    assert await h.reporter.drain()
    assert cp.seqs == [1, 3]
    assert [r["report_id"] for r in cp.stored] == [ids[0], ids[2]]
    assert h.metric("haetae_agent_reports_dropped_total", reason="rejected") == 1
    assert h.metric("haetae_agent_reports_dead_lettered_total", reason="unprocessable") == 1
    assert h.metric("haetae_agent_reports_dead_lettered_total", reason="invalid") == 0
    assert h.spool.pending_count == 0
    (entry,) = h.dead_letters.entries()
    assert (entry["report_id"], entry["seq"], entry["status"]) == (ids[1], 2, 422)
    assert (entry["reason"], entry["detail"]) == ("unprocessable", "poison report")
    # the body is kept as sent, for a person to look at or replay
    body = decode_report(base64.b64decode(str(entry["body_gzip_base64"])))
    assert body["report_id"] == ids[1]
    h.close()


@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, "invalid"), (413, "too_large"), (415, "unsupported"), (418, "other")],
)
async def test_every_poison_4xx_is_dead_lettered(
    session: HttpClient,
    control_plane: tuple[FakeControlPlane, str],
    tmp_path: Path,
    status: int,
    reason: str,
) -> None:
    cp, url = control_plane
    h = Harness(session, tmp_path, url)
    cp.fail_next = [status]
    ids = await h.submit(2)
    assert await h.reporter.drain()
    assert [r["report_id"] for r in cp.stored] == [ids[1]]
    assert h.metric("haetae_agent_reports_dead_lettered_total", reason=reason) == 1
    assert [e["status"] for e in h.dead_letters.entries()] == [status]
    h.close()


@pytest.mark.parametrize("status", [403, 404, 405, 408, 409, 425, 429])
async def test_answers_about_the_agent_or_the_moment_keep_the_report(
    session: HttpClient,
    control_plane: tuple[FakeControlPlane, str],
    tmp_path: Path,
    status: int,
) -> None:
    cp, url = control_plane
    h = Harness(session, tmp_path, url)
    cp.fail_next = [status]
    ids = await h.submit(2)
    assert not await h.reporter.drain()  # stopped: retry later, nothing given up
    assert h.spool.pending_count == 2
    assert await h.reporter.drain()
    assert [r["report_id"] for r in cp.stored] == ids
    assert h.dead_letters.entries() == []
    assert h.metric("haetae_agent_reports_dead_lettered_total", reason="other") == 0
    h.close()


async def test_revoked_token_triggers_reenrolment(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, url = control_plane
    h = Harness(session, tmp_path, url)
    ids = await h.submit(1)
    assert await h.reporter.drain()
    old = h.tokens.load()
    cp.revoke_all()
    ids += await h.submit(1)
    assert await h.reporter.drain()
    assert cp.enrolments == 2
    assert h.tokens.load() not in (None, old)
    _assert_once_in_order(cp, ids)
    h.close()


async def test_without_any_token_reports_stay_spooled(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, url = control_plane
    h = Harness(session, tmp_path, url, enrolment_token=None)
    await h.submit(2)
    assert not await h.reporter.drain()
    assert h.metric("haetae_agent_reports_failed_total", reason="not_enrolled") == 1
    assert "enrolment_token" in (h.reporter.status().last_error or "")
    assert h.spool.pending_count == 2
    assert cp.report_posts == 0
    h.close()


async def test_wrong_enrolment_token_keeps_reports(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    _, url = control_plane
    h = Harness(session, tmp_path, url, enrolment_token="wrong")
    await h.submit(1)
    assert not await h.reporter.drain()
    assert "HTTP 401" in (h.reporter.status().last_error or "")
    assert h.spool.pending_count == 1
    h.close()


async def test_flush_is_bounded(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, url = control_plane
    h = Harness(session, tmp_path, url)
    await h.submit(1)
    cp.delay_s = 5
    started = time.monotonic()
    assert not await h.reporter.flush(0.3)
    assert time.monotonic() - started < 1.5
    assert h.spool.pending_count == 1
    h.close()


async def test_throttling_honours_retry_after(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, url = control_plane
    h = Harness(session, tmp_path, url)
    cp.fail_next, cp.retry_after = [429], "1"
    started = time.monotonic()
    async with h.running():
        ids = await h.submit(1)
        await cp.wait_for(1)
    assert time.monotonic() - started >= 1.0  # not the 10-50 ms backoff of this harness
    assert h.metric("haetae_agent_reports_failed_total", reason="throttled") == 1
    _assert_once_in_order(cp, ids)
    h.close()


async def test_renamed_agent_enrols_again_instead_of_being_refused(
    session: HttpClient, control_plane: tuple[FakeControlPlane, str], tmp_path: Path
) -> None:
    cp, url = control_plane
    old = Harness(session, tmp_path, url)
    await old.submit(1)
    assert await old.reporter.drain()
    old.close()
    renamed = Harness(session, tmp_path, url, agent_id="web-2")  # same state directory
    await renamed.submit(1)
    assert await renamed.reporter.drain()
    assert cp.enrolments == 2 and len(cp.stored) == 2
    renamed.close()
