"""Low-priority work through the Gemini Batch API: the real SDK against the local fake."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from la_fakes import ANSWER, FakeGemini, Origin, analyzer_config

from link_analyzer.gemini import AnalysisInput, GeminiAnalyzer, GeminiError, GeminiSettings
from link_analyzer.gemini_batch import BatchSettings, GeminiBatcher
from link_analyzer.queue import JobStatus, Priority
from link_analyzer.service import LinkAnalyzerService
from link_analyzer.urls import canonicalize
from link_analyzer.worker import Worker

FAST = BatchSettings(max_items=10, max_wait_s=0.05, poll_s=0.02)


def item(n: int) -> AnalysisInput:
    return AnalysisInput(
        url=f"https://news.example/{n}",
        title=f"기사 {n}",
        description="서울시는 다음 달부터 지하철 기본요금을 올린다.",
        site_name="예시뉴스",
        text="",
    )


@contextlib.asynccontextmanager
async def batcher(fake: FakeGemini, settings: BatchSettings) -> AsyncIterator[GeminiBatcher]:
    gemini = GeminiAnalyzer(GeminiSettings(api_key="test-key", base_url=fake.base_url))
    b = GeminiBatcher(gemini, settings)
    try:
        yield b
    finally:
        await b.aclose()
        await gemini.aclose()


async def test_items_go_in_one_batch_and_answers_map_back_by_key(
    fake_gemini: FakeGemini,
) -> None:
    async with batcher(fake_gemini, FAST) as b:
        results = await asyncio.gather(*(b.analyze(item(n)) for n in range(3)))
    assert fake_gemini.requests == []  # no online generateContent call
    assert fake_gemini.paths == ["/v1beta/models/gemini-2.5-flash:batchGenerateContent"]
    assert list(fake_gemini.batches) == ["batches/fake1"]
    sent = fake_gemini.batches["batches/fake1"]
    assert [r["metadata"]["key"] for r in sent] == ["0", "1", "2"]
    gen = sent[0]["request"]["generationConfig"]
    assert gen["responseMimeType"] == "application/json" and "responseJsonSchema" in gen
    assert len(fake_gemini.batch_polls) == 2  # running once, then succeeded
    # The fake answers in reverse order; each item still gets its own answer.
    for n, (analysis, usage) in enumerate(results):
        assert analysis.summary == f"about https://news.example/{n}"
        assert analysis.category == ANSWER["category"]
        assert usage.batch and usage.prompt_tokens == 200 and usage.output_tokens == 50


async def test_max_items_splits_batches(fake_gemini: FakeGemini) -> None:
    async with batcher(fake_gemini, BatchSettings(max_items=2, max_wait_s=5, poll_s=0.02)) as b:
        started = time.monotonic()
        results = await asyncio.gather(*(b.analyze(item(n)) for n in range(4)))
        took = time.monotonic() - started
    assert sorted(len(v) for v in fake_gemini.batches.values()) == [2, 2]
    assert took < 2  # full batches go at once, not after max_wait_s
    assert [a.summary for a, _ in results] == [f"about https://news.example/{n}" for n in range(4)]


@pytest.mark.parametrize("state", ["BATCH_STATE_FAILED", "BATCH_STATE_EXPIRED"])
async def test_failed_batch_fails_every_item_retryably(fake_gemini: FakeGemini, state: str) -> None:
    fake_gemini.batch_state = state
    async with batcher(fake_gemini, FAST) as b:
        results = await asyncio.gather(
            *(b.analyze(item(n)) for n in range(2)), return_exceptions=True
        )
    assert all(isinstance(r, GeminiError) and r.retryable for r in results)


async def test_failed_polls_are_retried_then_give_up(fake_gemini: FakeGemini) -> None:
    fake_gemini.fail_polls_with = [503, 503]
    async with batcher(fake_gemini, FAST) as b:
        analysis, _ = await b.analyze(item(0))
    assert analysis.summary == "about https://news.example/0"
    assert len(fake_gemini.batches) == 1  # not resubmitted

    fake_gemini.fail_polls_with = [503] * 3
    settings = BatchSettings(max_items=10, max_wait_s=0.05, poll_s=0.02, max_failed_polls=3)
    async with batcher(fake_gemini, settings) as b:
        with pytest.raises(GeminiError) as info:
            await b.analyze(item(1))
    assert info.value.retryable


async def test_create_refused_is_translated(fake_gemini: FakeGemini) -> None:
    async with batcher(fake_gemini, FAST) as b:
        b.gemini.settings = GeminiSettings(api_key="k", model="no/such/model")
        with pytest.raises(GeminiError):
            await b.analyze(item(0))


async def wait_done(svc: LinkAnalyzerService, job_id: str, within_s: float = 10) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        view = await svc.queue.status(job_id)
        if view is not None and view.status in {JobStatus.DONE, JobStatus.DEAD}:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished")


async def test_worker_sends_low_priority_jobs_through_the_batch_api(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    config = analyzer_config(
        fake_gemini.base_url,
        gemini={
            "api_key": "test-key",
            "base_url": fake_gemini.base_url,
            "batch_max_wait_s": 0.1,
            "batch_poll_s": 0.02,
            "input_per_mtok": 1.0,
            "output_per_mtok": 4.0,
            "batch_input_per_mtok": 0.5,
            "batch_output_per_mtok": 2.0,
        },
    )
    async with LinkAnalyzerService(config, redis_client) as svc:
        urls = {"low": origin.url("/article"), "normal": origin.url("/watch")}
        jobs = {
            name: await svc.queue.enqueue(
                canonicalize(url).key,
                {"url": url},
                priority=Priority.LOW if name == "low" else Priority.NORMAL,
            )
            for name, url in urls.items()
        }
        stop = asyncio.Event()
        worker = Worker(svc.queue, svc.handle, concurrency=4, poll_s=0.05)
        task = asyncio.create_task(worker.run(stop, grace_s=2))
        try:
            views = {name: await wait_done(svc, j.job_id) for name, j in jobs.items()}
        finally:
            stop.set()
            await task
        calls = await svc.ledger.recent_calls()
    low, normal = views["low"].result["ai"], views["normal"].result["ai"]
    assert views["low"].status == JobStatus.DONE, views["low"]
    assert low["status"] == "done" and low["batch"] is True
    assert low["analysis"]["summary"] == f"about {canonicalize(urls['low']).url}"
    assert normal["status"] == "done" and normal["batch"] is False
    assert len(fake_gemini.batches) == 1 and len(fake_gemini.requests) == 1
    # Batch prices for the batch call: 200 prompt tokens + 1 image (258) at 0.5, 50 at 2.0.
    by_kind = {c["batch"]: c for c in calls}
    assert by_kind[True]["cost_micros"] == round(
        by_kind[True]["prompt_tokens"] * 0.5 + by_kind[True]["output_tokens"] * 2.0
    )
    assert by_kind[False]["cost_micros"] == round(
        by_kind[False]["prompt_tokens"] * 1.0 + by_kind[False]["output_tokens"] * 4.0
    )
