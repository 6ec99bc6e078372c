"""The real google-genai SDK against a local fake Gemini, through its base-URL option."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis
from la_fakes import ANSWER, FakeGemini

from link_analyzer.gemini import (
    AnalysisInput,
    GeminiAnalyzer,
    GeminiError,
    GeminiSettings,
    MediaPart,
)
from link_analyzer.ledger import CostLedger, Prices


def settings(fake: FakeGemini) -> GeminiSettings:
    return GeminiSettings(api_key="test-key", base_url=fake.base_url, api_version="v1beta")


ITEM = AnalysisInput(
    url="https://news.example/1",
    title="서울 지하철 기본요금 150원 인상",
    description="서울시는 다음 달부터 지하철 기본요금을 올린다.",
    site_name="예시뉴스",
    text="",
    media=(MediaPart(b"\x89PNG fake", "image/png"), MediaPart(b"\xff\xd8 fake", "image/jpeg")),
)


async def test_structured_call_with_media_in_one_request(fake_gemini: FakeGemini) -> None:
    analyzer = GeminiAnalyzer(settings(fake_gemini))
    try:
        analysis, usage = await analyzer.analyze(ITEM)
    finally:
        await analyzer.aclose()
    assert analysis.model_dump() == ANSWER
    assert fake_gemini.paths == ["/v1beta/models/gemini-2.5-flash:generateContent"]
    assert fake_gemini.api_keys == ["test-key"]
    body = fake_gemini.requests[0]
    parts = body["contents"][0]["parts"]
    assert "서울 지하철" in parts[0]["text"]
    # Proto JSON accepts both spellings; the SDK sends snake_case here.
    inline = [p["inlineData"] for p in parts[1:]]
    assert [d.get("mimeType") or d.get("mime_type") for d in inline] == ["image/png", "image/jpeg"]
    gen = body["generationConfig"]
    assert gen["responseMimeType"] == "application/json"
    assert "responseSchema" in gen or "responseJsonSchema" in gen
    assert usage.prompt_tokens == 200 + 2 * 258 and usage.output_tokens == 50


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (429, True), (400, False)])
async def test_api_errors_translated(fake_gemini: FakeGemini, status: int, retryable: bool) -> None:
    fake_gemini.fail_with = [status]
    analyzer = GeminiAnalyzer(settings(fake_gemini))
    try:
        with pytest.raises(GeminiError) as info:
            await analyzer.analyze(ITEM)
    finally:
        await analyzer.aclose()
    assert info.value.status == status and info.value.retryable is retryable
    assert len(fake_gemini.requests) == 1  # no hidden SDK retries: the queue owns retries


async def test_cost_ledger_per_call_url_and_day(redis_client: aioredis.Redis) -> None:
    from link_analyzer.ledger import Usage

    ledger = CostLedger(redis_client, Prices(input_per_mtok=0.3, output_per_mtok=2.5))
    now = time.mktime((2026, 11, 27, 12, 0, 0, 0, 0, 0))
    usage = Usage("gemini-2.5-flash", prompt_tokens=1000, output_tokens=200, total_tokens=1200)
    assert await ledger.record("u1", usage, now=now) == 800  # 300 + 500 micro-USD
    await ledger.record("u2", usage, now=now)
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    assert await ledger.day(day) == {
        "calls": 2,
        "prompt_tokens": 2000,
        "output_tokens": 400,
        "cost_micros": 1600,
    }
    assert (await ledger.for_url("u1"))["calls"] == 1
    assert [c["url_hash"] for c in await ledger.recent_calls()] == ["u2", "u1"]
