"""Issue 9: one bad report hurts nobody. Over HTTP against a real control plane and PostgreSQL:
a poison report and good reports from two agents, concurrently, many rounds; and a real agent
reporter dead-lettering what the control plane refuses, then carrying on."""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient
from api_agents_support import Api, build_app
from prometheus_client import CollectorRegistry

import control_plane.ingest.decode as decode
from agent.backoff import Backoff
from agent.client import ControlPlaneClient
from agent.collectors.base import Sample
from agent.config import AgentConfig
from agent.dead_letter import DeadLetters
from agent.http.client import HttpClient
from agent.reporter import Reporter
from agent.runner import CollectorRun, Cycle
from agent.spool import Spool
from agent.state import SeqAllocator, TokenStore
from control_plane.auth import TokenKind
from control_plane.auth.middleware import TOKEN_STORE
from control_plane.config import ControlPlaneConfig, HttpConfig, IngestConfig

ROUNDS = 50
GOOD_SAMPLES = 3
# 64 labels of 4,096 characters: PostgreSQL's "index row size exceeds btree maximum 2704".
OVERSIZED = {f"l{i}": "v" * 4096 for i in range(64)}

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def plane(aiohttp_client: AiohttpClient, pool: asyncpg.Pool) -> Api:
    # A linger long enough that concurrent reports share a flush (and so a poison report
    # shares it with good ones), short enough to keep 50 rounds quick.
    config = ControlPlaneConfig(
        http=HttpConfig(max_body_bytes=1 << 20, max_decompressed_bytes=4 << 20),
        ingest=IngestConfig(flush_interval_s=0.05),
    )
    app = build_app(pool, config)
    client = await aiohttp_client(app)
    enrolment, _ = await app[TOKEN_STORE].create(TokenKind.ENROLMENT, "test enrolment")
    return Api(client, app, pool, enrolment, "")


def good_doc(round_: int) -> dict[str, Any]:
    return {
        "report_id": str(uuid.uuid4()),
        "seq": round_ + 1,
        "collected_at": time.time(),
        "samples": [
            {"name": "app_up", "labels": {"i": str(i)}, "value": round_}
            for i in range(GOOD_SAMPLES)
        ],
    }


def poison_doc(labels: dict[str, str]) -> dict[str, Any]:
    return {
        "report_id": str(uuid.uuid4()),
        "collected_at": time.time(),
        "samples": [
            {"name": "app_up", "labels": {"i": "0"}, "value": 1},
            {"name": "app_poison", "labels": labels, "value": 1},
        ],
    }


async def post(api: Api, agent: str, token: str, doc: dict[str, Any]) -> tuple[int, Any]:
    resp = await api.client.post(
        f"/api/v1/agents/{agent}/reports",
        data=gzip.compress(orjson.dumps(doc), 1),
        headers={**api.bearer(token), "Content-Encoding": "gzip"},
    )
    return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    ("mode", "labels", "status"),
    [
        ("refused-at-decode", {"a": "x\u0000y"}, 400),
        ("refused-at-decode", OVERSIZED, 400),
        # decode's label checks switched off: PostgreSQL refuses, the flush is bisected
        ("refused-by-postgres", {"a": "x\u0000y"}, 422),
        ("refused-by-postgres", OVERSIZED, 422),
    ],
    ids=["nul-decode", "oversized-decode", "nul-postgres", "oversized-postgres"],
)
async def test_a_poison_report_hurts_nobody(
    plane: Api,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    labels: dict[str, str],
    status: int,
) -> None:
    if mode == "refused-by-postgres":
        monkeypatch.setattr(decode, "_check_labels", lambda *a: None)
        # and a memo of its own, so no other test takes these label sets as checked
        monkeypatch.setattr(decode, "_valid_label_keys", set())
    caplog.set_level(logging.INFO, logger="control_plane.ingest")
    innocent = await plane.enroll("innocent")
    culprit = await plane.enroll("culprit")

    async def culprit_round(r: int) -> tuple[int, int]:
        bad, problem = await post(plane, "culprit", culprit, poison_doc(labels))
        assert problem["detail"], problem
        good, _ = await post(plane, "culprit", culprit, good_doc(r))
        return bad, good

    innocent_statuses: list[int] = []
    culprit_statuses: list[tuple[int, int]] = []
    for r in range(ROUNDS):
        (a, _), b = await asyncio.gather(
            post(plane, "innocent", innocent, good_doc(r)), culprit_round(r)
        )
        innocent_statuses.append(a)
        culprit_statuses.append(b)

    assert innocent_statuses == [200] * ROUNDS  # not one 503
    assert culprit_statuses == [(status, 200)] * ROUNDS
    rows = await plane.pool.fetch(
        """SELECT s.agent_id, s.labels->>'i' AS i, x.value, count(*) AS n
           FROM samples x JOIN series s USING (series_id)
           GROUP BY 1, 2, 3"""
    )
    stored = {(r["agent_id"], r["i"], r["value"]): r["n"] for r in rows}
    for agent in ("innocent", "culprit"):
        for r in range(ROUNDS):
            for i in range(GOOD_SAMPLES):
                assert stored.pop((agent, str(i), float(r))) == 1  # exactly once
    assert stored == {}  # nothing of the poison reports
    assert await plane.pool.fetchval("SELECT count(*) FROM series WHERE name = 'app_poison'") == 0
    rejected = plane.metrics.registry.get_sample_value(
        "haetae_ingest_reports_total", {"outcome": "rejected"}
    )
    assert rejected == ROUNDS
    if mode == "refused-by-postgres":
        # the poison report did share flushes with good ones, and only it failed
        assert "writing the halves apart" in caplog.text


async def test_a_real_agent_dead_letters_a_refused_report_and_goes_on(
    plane: Api, tmp_path: Path
) -> None:
    url = str(plane.client.make_url("")).rstrip("/")
    config = AgentConfig(
        agent_id="web-1",
        state_dir=tmp_path,
        control_plane={"url": url, "enrolment_token": plane.enrolment_token},
    )
    registry = CollectorRegistry()
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=64 * 1024)
    dead = DeadLetters(tmp_path / "dead-letter.jsonl")
    async with HttpClient() as session:
        client = ControlPlaneClient(
            config,
            session=session,
            tokens=TokenStore(tmp_path / "agent.token", "web-1"),
            registry=registry,
        )
        reporter = Reporter(
            client=client,
            spool=spool,
            seq=SeqAllocator(tmp_path / "report.seq"),
            registry=registry,
            dead_letters=dead,
            backoff=Backoff(base_s=0.01, cap_s=0.05),
        )
        # What no collector sends any more (they check agent/wire.py), from an older agent, say
        for labels in ({"i": "0"}, {"a": "x\u0000y"}, OVERSIZED, {"i": "1"}):
            run = CollectorRun("x", True, 0.0, 1)
            cycle = Cycle(time.time(), [Sample("app_up", labels, 1.0)], [run])
            await reporter.submit(cycle)
        assert await reporter.drain()
    assert spool.pending_count == 0
    stored = await plane.pool.fetch("SELECT labels->>'i' AS i FROM series ORDER BY 1")
    assert [r["i"] for r in stored] == ["0", "1"]
    entries = dead.entries()
    assert [(e["seq"], e["status"], e["reason"]) for e in entries] == [
        (2, 400, "invalid"),
        (3, 400, "invalid"),
    ]
    assert "samples[0].labels.a" in str(entries[0]["detail"])
    assert "NUL" in str(entries[0]["detail"])
    assert "2048" in str(entries[1]["detail"]) or "longer than" in str(entries[1]["detail"])
    dead_lettered = registry.get_sample_value(
        "haetae_agent_reports_dead_lettered_total", {"reason": "invalid"}
    )
    assert dead_lettered == 2
