"""Naver blog posts: the mobile page (m.blog.naver.com/{blogId}/{logNo}) is fetched whole and its
SmartEditor markup gives title, nick, date, body text and the lazy-loaded images."""

from __future__ import annotations

import dataclasses

import pytest
import redis.asyncio as aioredis
from la_fakes import (
    ANSWER,
    NAVER_DESKTOP_FRAMESET,
    NAVER_MOBILE_POST,
    FakeGemini,
    Origin,
    analyzer_config,
)

from link_analyzer import pipeline
from link_analyzer.extract import extract_metadata
from link_analyzer.extract.naver import extract_naver, is_naver_blog, parse_date
from link_analyzer.platforms import Platform
from link_analyzer.service import LinkAnalyzerService
from link_analyzer.urls import canonicalize

POST_URL = "https://m.blog.naver.com/jejutrip_log/223456789012"


def test_mobile_post_fields() -> None:
    meta = extract_naver(NAVER_MOBILE_POST, POST_URL)
    assert meta.title == "제주도 3박 4일 여행 코스 총정리"
    assert meta.author == "바람따라"  # the post's nick, not the commenter's
    assert meta.published == "2026-11-20T14:05:00+09:00"
    assert meta.site_name == "네이버 블로그 | 바람따라 제주" and meta.kind == "article"
    # The originals (data-lazy-src), not the blurred placeholders; no sticker; og:image last.
    assert meta.images == (
        "https://postfiles.pstatic.net/MjAyNjExMjBfMjAw/IMG_2041.jpg?type=w773",
        "https://postfiles.pstatic.net/MjAyNjExMjBfMjAx/IMG_2077.jpg?type=w773",
        "https://blogthumb.pstatic.net/MjAyNjExMjBfMTIz/MDAxNzAwMDAwMDAwMDAw.jpg?type=w2",
    )
    lines = meta.body_text.split("\n")
    assert lines == [
        "첫째 날은 공항 근처 용두암에서 시작해 애월 해안도로를 따라 카페 거리까지 이동했습니다.",
        "해 질 무렵 한담 해변 산책로는 꼭 걸어 보세요.",
        "둘째 날은 성산일출봉 일출을 보고 우도로 건너가 땅콩 아이스크림을 먹었어요.",
        "셋째 날은 비가 와서 박물관 투어, 마지막 날은 동문시장에서 기념품을 샀습니다.",
    ]
    # og: fields are kept; chrome, scripts and comments stay out of the text.
    assert meta.description is not None and meta.description.startswith("첫째 날은")
    assert meta.canonical_url == POST_URL
    assert "naver-blog" in meta.sources and "opengraph" in meta.sources
    assert "여행조아" not in meta.body_text and "__SE_VIEWER__" not in meta.body_text


def test_older_editor_and_fallbacks() -> None:
    se2 = """<html><head><meta property="og:title" content="OG 제목">
    <meta content="닉네임메타" property="naverblog:nickname"></head><body>
    <div class="se_component_wrap sect_dsc"><div class="se_component se_paragraph">
    <p>옛 에디터 본문 첫 문단</p><p>둘째 문단<br>줄바꿈 뒤</p>
    <img class="se_mediaImage __se_img_el" src="/thumb.jpg?type=w80_blur" data-lazy-src="/orig.jpg">
    </div></div><span class="se_publishDate pcol2">2019. 5. 3. 14:20</span></body></html>"""
    meta = extract_naver(se2, POST_URL)
    assert meta.title == "OG 제목" and meta.author == "닉네임메타"
    assert meta.published == "2019-05-03T14:20:00+09:00"
    assert meta.body_text == "옛 에디터 본문 첫 문단\n둘째 문단\n줄바꿈 뒤"
    assert meta.images == ("https://m.blog.naver.com/orig.jpg",)
    assert parse_date("2024. 1. 15.") == "2024-01-15" and parse_date("3시간 전") is None


def test_desktop_frameset_is_why_the_mobile_page_is_fetched() -> None:
    # The desktop page's content is an iframe: nothing to analyse there ...
    assert extract_metadata(NAVER_DESKTOP_FRAMESET, "https://blog.naver.com/x/1").body_text == ""
    # ... so every Naver blog form canonicalises to the mobile page.
    for url in (
        "https://blog.naver.com/jejutrip_log/223456789012",
        "https://blog.naver.com/PostView.naver?blogId=jejutrip_log&logNo=223456789012",
        "https://m.blog.naver.com/PostView.naver?blogId=jejutrip_log&logNo=223456789012",
    ):
        canon = canonicalize(url)
        assert canon.platform is Platform.NAVER_BLOG and canon.url == POST_URL
    assert is_naver_blog(POST_URL, b"") and not is_naver_blog("https://example.com/", b"<p>")


async def test_naver_post_through_the_pipeline(
    redis_client: aioredis.Redis,
    origin: Origin,
    fake_gemini: FakeGemini,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fake origin stands in for m.blog.naver.com (same path shape, on loopback).
    real = pipeline.canonicalize

    def to_origin(raw: str):  # type: ignore[no-untyped-def]
        canon = real(raw)
        if canon.platform is Platform.NAVER_BLOG and canon.content_id:
            return dataclasses.replace(canon, url=origin.url(f"/m-blog/{canon.content_id}"))
        return canon

    monkeypatch.setattr(pipeline, "canonicalize", to_origin)
    async with LinkAnalyzerService(analyzer_config(fake_gemini.base_url), redis_client) as svc:
        report = await svc.analyzer.analyze(
            "https://blog.naver.com/jejutrip_log/223456789012?fromRss=true&trackingCode=rss"
        )
    assert (
        report["platform"] == "naver_blog" and report["content_id"] == "jejutrip_log/223456789012"
    )
    meta = report["metadata"]
    assert meta["title"] == "제주도 3박 4일 여행 코스 총정리" and meta["author"] == "바람따라"
    assert meta["published"] == "2026-11-20T14:05:00+09:00"
    assert meta["images"][0].endswith("IMG_2041.jpg?type=w773")
    # The body was read past </head>: the post's text reached the model.
    assert report["quality"]["verdict"] == "ok" and report["ai"]["analysis"] == ANSWER
    prompt = str(fake_gemini.requests[0]["contents"])
    assert "동문시장" in prompt and "여행조아" not in prompt
    assert origin.hits["/m-blog/jejutrip_log/223456789012"] == 1
