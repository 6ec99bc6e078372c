# ruff: noqa: E501  (realistic HTML fixtures keep their long lines)
"""Local fakes for the link-analyzer tests: an origin serving realistic (and misbehaving)
pages, and a Gemini speaking generateContent, both aiohttp apps on loopback."""

from __future__ import annotations

import asyncio
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from link_analyzer.config import LinkAnalyzerConfig
from link_analyzer.ssrf import AddressPolicy

# Tests reach their origins on loopback; everything else stays refused.
LOOPBACK_POLICY = AddressPolicy.allowing(["127.0.0.0/8"])

ARTICLE = (
    """<!doctype html>
<html lang="ko"><head>
<meta charset="utf-8">
<title>서울 지하철 요금 인상 - 예시뉴스</title>
<meta name="description" content="Plain description that OpenGraph overrides.">
<meta property="og:type" content="article">
<meta property="og:title" content="서울 지하철 기본요금 150원 인상">
<meta property="og:description" content="서울시는 다음 달부터 지하철 기본요금을 1,400원에서 1,550원으로 올린다고 밝혔다. 시민 부담을 줄이기 위한 정기권 할인도 함께 확대된다.">
<meta property="og:image" content="/img/subway.jpg">
<meta property="og:site_name" content="예시뉴스">
<meta name="twitter:card" content="summary_large_image">
<meta name="twitter:creator" content="@reporter">
<link rel="canonical" href="/news/2026/subway-fare">
<script type="application/ld+json">
{"@context":"https://schema.org","@graph":[{"@type":"WebSite","name":"예시뉴스"},
 {"@type":"NewsArticle","headline":"서울 지하철 기본요금 150원 인상","datePublished":"2026-11-20T09:00:00+09:00",
  "author":{"@type":"Person","name":"김기자"},"image":["https://cdn.example/a.jpg"]}]}
</script>
<script>window.dataLayer=[];</script>
</head>
<body><article><h1>서울 지하철 기본요금 150원 인상</h1><p>본문...</p></article>
"""
    + ("<p>padding paragraph</p>\n" * 2000)
    + "</body></html>"
)

LOGIN_PAGE = """<html><head><title>Log in • Instagram</title></head>
<body><form><input name="username"><input type="password" name="password">
<button>Log in</button></form></body></html>"""

EMPTY_PAGE = "<html><head></head><body></body></html>"

# A player page that says nothing itself but points at its oEmbed (as TikTok's often do).
PLAYER_PAGE = """<html><head>
<link rel="alternate" type="application/json+oembed" href="/oembed?url=%2Fplayer">
</head><body><div id="app"></div></body></html>"""

OEMBED = {
    "version": "1.0",
    "type": "video",
    "title": "고양이가 피아노를 치는 영상",
    "author_name": "catpiano",
    "provider_name": "ExampleTube",
    "thumbnail_url": "/img/thumb.jpg",
}

YOUTUBE_WATCH = """<html><head><title>Rick Astley - Never Gonna Give You Up - YouTube</title>
<meta property="og:title" content="Rick Astley - Never Gonna Give You Up (Official Video)">
<meta property="og:description" content="The official video for “Never Gonna Give You Up” by Rick Astley.">
<meta property="og:image" content="https://i.ytimg.com/vi/dQw4w9WgXcQ/maxresdefault.jpg">
<meta property="og:video:url" content="https://www.youtube.com/embed/dQw4w9WgXcQ">
<meta property="og:type" content="video.other">
<link rel="alternate" type="application/json+oembed" href="https://www.youtube.com/oembed?format=json&amp;url=https%3A%2F%2Fwww.youtube.com%2Fwatch%3Fv%3DdQw4w9WgXcQ">
</head><body></body></html>"""


# Naver's mobile blog page (m.blog.naver.com/{blogId}/{logNo}), SmartEditor ONE markup, trimmed:
# the post inline in the body (the desktop page is a frameset around an iframe), images lazy
# (``src`` a blurred placeholder, ``data-lazy-src`` the original), chrome and comments around it
# carrying nicks and dates of their own.
NAVER_MOBILE_POST = """<!DOCTYPE html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1.0,maximum-scale=1.0,minimum-scale=1.0,user-scalable=no">
<title>제주도 3박 4일 여행 코스 총정리 : 네이버 블로그</title>
<meta property="og:title" content="제주도 3박 4일 여행 코스 총정리">
<meta property="og:image" content="https://blogthumb.pstatic.net/MjAyNjExMjBfMTIz/MDAxNzAwMDAwMDAwMDAw.jpg?type=w2">
<meta property="og:description" content="첫째 날은 공항 근처 용두암에서 시작해 애월 해안도로를 따라 카페 거리까지 이동했습니다. 둘째 날은 성산일출봉...">
<meta property="og:url" content="https://blog.naver.com/jejutrip_log/223456789012">
<meta property="og:type" content="article">
<meta property="og:site_name" content="네이버 블로그 | 바람따라 제주">
<meta property="naverblog:nickname" content="바람따라">
<meta property="naverblog:profile_image" content="https://blogpfthumb-phinf.pstatic.net/profile.jpg">
<link rel="canonical" href="https://m.blog.naver.com/jejutrip_log/223456789012">
<script type="text/javascript">var blogId = 'jejutrip_log'; var logNo = '223456789012'; var gnb_option = {};</script>
<link rel="stylesheet" type="text/css" href="https://ssl.pstatic.net/blogimgs/mobile/css/postview.css">
</head>
<body class="se_body">
<div id="_header" class="header_wrap"><a href="/jejutrip_log" class="blog_title">바람따라 제주</a><button class="btn_menu">메뉴</button></div>
<div class="post_ct" id="viewTypeSelector">
  <div class="se-viewer se-theme-default" lang="ko-KR">
    <div class="se-component se-documentTitle se-l-default">
      <div class="se-component-content">
        <div class="se-title-text"><p class="se-text-paragraph"><span class="se-fs- se-ff-">제주도 3박 4일 여행 코스 총정리</span></p></div>
        <div class="blog_authorArea">
          <div class="blog_author"><strong class="ell"><span class="nick"><a href="/jejutrip_log">바람따라</a></span></strong>
          <button class="btn_follow"><span>이웃추가</span></button></div>
          <p class="blog_date">2026. 11. 20. 14:05</p>
        </div>
      </div>
    </div>
    <div class="se-main-container">
      <div class="se-component se-text se-l-default"><div class="se-component-content"><div class="se-section se-section-text"><div class="se-module se-module-text">
        <p class="se-text-paragraph se-text-paragraph-align-"><span>첫째 날은 공항 근처 용두암에서 시작해 애월 해안도로를 따라 카페 거리까지 이동했습니다.</span></p>
        <p class="se-text-paragraph se-text-paragraph-align-"><span>해 질 무렵 </span><b><span>한담 해변 산책로</span></b><span>는 꼭 걸어 보세요.</span></p>
      </div></div></div></div>
      <div class="se-component se-image se-l-default"><div class="se-component-content"><div class="se-section se-section-image"><div class="se-module se-module-image">
        <a class="se-module-image-link __se_image_link __se_link" data-linktype="img" data-linkdata='{"id":"SE-1","src":"https://postfiles.pstatic.net/MjAyNjExMjBfMjAw/IMG_2041.jpg?type=w773","originalWidth":"4032","originalHeight":"3024"}'>
          <img src="https://postfiles.pstatic.net/MjAyNjExMjBfMjAw/IMG_2041.jpg?type=w80_blur" data-lazy-src="https://postfiles.pstatic.net/MjAyNjExMjBfMjAw/IMG_2041.jpg?type=w773" data-width="773" data-height="580" alt="" class="se-image-resource egjs-visible">
        </a>
      </div></div></div></div>
      <div class="se-component se-text se-l-default"><div class="se-component-content"><div class="se-section se-section-text"><div class="se-module se-module-text">
        <p class="se-text-paragraph"><span>둘째 날은 성산일출봉 일출을 보고 우도로 건너가 땅콩 아이스크림을 먹었어요.</span></p>
        <p class="se-text-paragraph"><span>&#8203;</span></p>
      </div></div></div></div>
      <div class="se-component se-sticker se-l-default"><div class="se-component-content"><div class="se-section se-section-sticker"><div class="se-module se-module-sticker">
        <img src="https://storep-phinf.pstatic.net/ogq_sticker/original_8.png?type=p100_100" class="se-sticker-image" alt="">
      </div></div></div></div>
      <div class="se-component se-image se-l-default"><div class="se-component-content"><div class="se-section se-section-image"><div class="se-module se-module-image">
        <img src="https://postfiles.pstatic.net/MjAyNjExMjBfMjAx/IMG_2077.jpg?type=w80_blur" data-lazy-src="https://postfiles.pstatic.net/MjAyNjExMjBfMjAx/IMG_2077.jpg?type=w773" class="se-image-resource" alt="">
      </div></div></div></div>
      <div class="se-component se-text se-l-default"><div class="se-component-content"><div class="se-section se-section-text"><div class="se-module se-module-text">
        <p class="se-text-paragraph"><span>셋째 날은 비가 와서 박물관 투어, 마지막 날은 동문시장에서 기념품을 샀습니다.</span></p>
      </div></div></div></div>
      <script>window.__SE_VIEWER__ = {"lazy": true};</script>
    </div>
  </div>
</div>
<div class="comment_area">
  <ul class="u_cbox_list">
    <li class="u_cbox_comment"><span class="u_cbox_nick nick">여행조아</span><span class="u_cbox_date blog_date">2026. 11. 21. 09:12</span><span class="u_cbox_contents">저도 다음 달에 가요! 참고할게요</span></li>
  </ul>
</div>
<div class="footer"><a href="https://m.naver.com">NAVER</a><p>Copyright © NAVER Corp.</p></div>
</body>
</html>"""

# The desktop blog page: a frameset whose post is loaded in the mainFrame iframe.
NAVER_DESKTOP_FRAMESET = """<html><head><title>제주도 3박 4일 여행 코스 총정리 : 네이버 블로그</title>
<meta property="og:title" content="제주도 3박 4일 여행 코스 총정리"></head>
<body><div id="whole-border"><div id="whole-body"><div id="mainFrame-container">
<iframe id="mainFrame" name="mainFrame" src="/PostView.naver?blogId=jejutrip_log&logNo=223456789012&redirect=Dlog&widgetTypeCall=true&directAccess=false" scrolling="auto" frameborder="0" title="본문 영역"></iframe>
</div></div></div></body></html>"""


def png(width: int, height: int) -> bytes:
    """A PNG's signature and IHDR (then filler): enough for a header reader."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(chunk[4:])) + b"\0" * 2048


def jpeg(width: int, height: int) -> bytes:
    """SOI, an APP0 (JFIF) segment, then a baseline SOF0 frame header."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\0" * 3
    return b"\xff\xd8" + app0 + sof0 + b"\0" * 1024


# Crafted images: small, a decompression bomb (tiny file, 50,000 x 50,000 pixels, 2.5 Gpx), a
# JPEG whose frame header claims 30,000 x 20,000, and bytes labelled JPEG that are nothing.
IMAGES: dict[str, tuple[bytes, str]] = {
    "small.png": (png(800, 600), "image/png"),
    "bomb.png": (png(50_000, 50_000), "image/png"),
    "huge.jpg": (jpeg(30_000, 20_000), "image/jpeg"),
    "photo.jpg": (jpeg(4032, 3024), "image/jpeg"),
    "garbage.jpg": (b"<html>not an image</html>" + b"\0" * 100, "image/jpeg"),
    # An origin that mislabels its PNG as JPEG: the bytes decide.
    "mislabelled.jpg": (png(320, 240), "image/jpeg"),
}

GALLERY = """<html lang="ko"><head><title>사진 모음 - 예시갤러리</title>
<meta property="og:title" content="가을 단풍 사진 모음">
<meta property="og:description" content="설악산과 내장산의 가을 단풍을 담은 사진 다섯 장입니다. 원본 크기 그대로 올렸습니다.">
<meta property="og:image" content="/img/bomb.png">
<meta property="og:image" content="/img/small.png">
<meta property="og:image" content="/img/huge.jpg">
<meta property="og:image" content="/img/garbage.jpg">
<meta property="og:image" content="/img/mislabelled.jpg">
<meta property="og:image" content="/img/photo.jpg">
</head><body><p>사진 모음</p></body></html>"""


@dataclass
class Origin:
    server: TestServer
    hits: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


def build_origin_app(origin: Origin) -> web.Application:
    async def count(request: web.Request) -> None:
        origin.hits[request.path] = origin.hits.get(request.path, 0) + 1

    async def html(request: web.Request, body: str, status: int = 200) -> web.Response:
        await count(request)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    async def article(request: web.Request) -> web.Response:
        return await html(request, ARTICLE)

    async def watch(request: web.Request) -> web.Response:
        return await html(request, YOUTUBE_WATCH)

    async def login(request: web.Request) -> web.Response:
        return await html(request, LOGIN_PAGE)

    async def walled(request: web.Request) -> web.Response:
        await count(request)
        raise web.HTTPFound("/accounts/login/?next=/p/abc/")

    async def empty(request: web.Request) -> web.Response:
        return await html(request, EMPTY_PAGE)

    async def player(request: web.Request) -> web.Response:
        return await html(request, PLAYER_PAGE)

    async def oembed(request: web.Request) -> web.Response:
        await count(request)
        return web.json_response(OEMBED)

    async def stall_once(request: web.Request) -> web.Response:
        # The first visitor hangs (its worker gets killed meanwhile); later ones are served.
        await count(request)
        if origin.hits[request.path] == 1:
            await asyncio.sleep(60)
        return web.Response(text=ARTICLE, content_type="text/html")

    async def redirect(request: web.Request) -> web.Response:
        await count(request)
        n = int(request.match_info["n"])
        raise web.HTTPFound("/article" if n <= 1 else f"/redirect/{n - 1}")

    async def to_internal(request: web.Request) -> web.Response:
        await count(request)
        raise web.HTTPFound(request.query["to"])

    async def slow(request: web.Request) -> web.Response:
        await count(request)
        await asyncio.sleep(float(request.query.get("s", "5")))
        return web.Response(text="<html><head><title>late</title></head></html>")

    async def huge(request: web.Request) -> web.StreamResponse:
        await count(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        await resp.prepare(request)
        await resp.write(b"<html><head><title>huge</title>")
        chunk = b"<meta name='x' content='" + b"y" * 8000 + b"'>"
        for _ in range(1000):  # 8 MB if nobody stops reading
            await resp.write(chunk)
        return resp

    async def limited(request: web.Request) -> web.Response:
        await count(request)
        if origin.hits[request.path] == 1:
            return web.Response(status=429, headers={"Retry-After": request.query.get("ra", "1")})
        return web.Response(text=ARTICLE, content_type="text/html")

    async def gate(request: web.Request) -> web.Response:
        await count(request)
        origin.in_flight += 1
        origin.max_in_flight = max(origin.max_in_flight, origin.in_flight)
        try:
            await asyncio.sleep(0.1)
        finally:
            origin.in_flight -= 1
        return web.Response(text=YOUTUBE_WATCH, content_type="text/html")

    async def naver_mobile(request: web.Request) -> web.Response:
        return await html(request, NAVER_MOBILE_POST)

    async def naver_desktop(request: web.Request) -> web.Response:
        return await html(request, NAVER_DESKTOP_FRAMESET)

    async def image(request: web.Request) -> web.Response:
        await count(request)
        name = request.match_info["name"]
        body, ctype = IMAGES.get(name, (png(64, 48), "image/png"))
        return web.Response(body=body, content_type=ctype)

    async def gallery(request: web.Request) -> web.Response:
        return await html(request, GALLERY)

    app = web.Application()
    app.router.add_get("/article", article)
    app.router.add_get("/news/{tail:.*}", article)
    app.router.add_get("/watch", watch)
    app.router.add_get("/accounts/login/", login)
    app.router.add_get("/p/{code}/", walled)
    app.router.add_get("/empty", empty)
    app.router.add_get("/player", player)
    app.router.add_get("/stall-once", stall_once)
    app.router.add_get("/oembed", oembed)
    app.router.add_get("/redirect/{n}", redirect)
    app.router.add_get("/to", to_internal)
    app.router.add_get("/slow", slow)
    app.router.add_get("/huge", huge)
    app.router.add_get("/limited", limited)
    app.router.add_get("/gate/{i}", gate)
    app.router.add_get("/img/{name}", image)
    app.router.add_get("/gallery", gallery)
    app.router.add_get("/m-blog/{blog_id}/{log_no}", naver_mobile)
    app.router.add_get("/blog/{blog_id}/{log_no}", naver_desktop)
    return app


# --- a local fake Gemini speaking generateContent -------------------------------------------


@dataclass
class FakeGemini:
    server: TestServer
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    api_keys: list[str] = field(default_factory=list)
    # Status codes to answer with before answering normally (e.g. [503] for one failure).
    fail_with: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    # Batch API: the created batches (their inlined requests), and how many polls answer
    # "running" before a batch succeeds.
    batches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    batch_polls: list[str] = field(default_factory=list)
    polls_before_done: int = 1
    batch_state: str = "BATCH_STATE_SUCCEEDED"
    batch_models: dict[str, str] = field(default_factory=dict)
    # Status codes to answer batch polls with before answering normally.
    fail_polls_with: list[int] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/"))


ANSWER = {
    "summary": "서울 지하철 기본요금이 1,550원으로 오른다.",
    "category": "news",
    "topics": ["교통", "요금"],
    "sentiment": "neutral",
    "language": "ko",
}


def _answer(model: str, parts: list[dict[str, Any]], answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": _json(answer)}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 200 + 258 * (len(parts) - 1),
            "candidatesTokenCount": 50,
            "totalTokenCount": 250 + 258 * (len(parts) - 1),
        },
        "modelVersion": model,
    }


def batch_summary(prompt: str) -> str:
    """The fake's batch answers name their item's URL, so tests can check the mapping."""
    return "about " + prompt.split("URL: ", 1)[1].split("\n", 1)[0]


def build_gemini_app(fake: FakeGemini) -> web.Application:
    async def generate(request: web.Request) -> web.Response:
        fake.paths.append(request.path)
        fake.api_keys.append(request.headers.get("x-goog-api-key", ""))
        body = await request.json()
        fake.requests.append(body)
        if fake.delay_s:
            await asyncio.sleep(fake.delay_s)
        if fake.fail_with:
            status = fake.fail_with.pop(0)
            return web.json_response(
                {"error": {"code": status, "message": "fake failure", "status": "UNAVAILABLE"}},
                status=status,
            )
        parts = body["contents"][0]["parts"]
        return web.json_response(_answer(request.match_info["model"], parts, ANSWER))

    def batch_view(name: str, model: str, done: bool) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{model}",
            "displayName": name,
            "state": fake.batch_state if done else "BATCH_STATE_RUNNING",
        }
        if done and fake.batch_state == "BATCH_STATE_SUCCEEDED":
            answers = [
                {
                    "response": _answer(
                        model,
                        r["request"]["contents"][0]["parts"],
                        {
                            **ANSWER,
                            "summary": batch_summary(
                                r["request"]["contents"][0]["parts"][0]["text"]
                            ),
                        },
                    ),
                    "metadata": r.get("metadata", {}),
                }
                for r in fake.batches[name]
            ]
            # Answers in reverse order: the client must map them by key, not position.
            metadata["output"] = {"inlinedResponses": {"inlinedResponses": answers[::-1]}}
        return {"name": name, "metadata": metadata, "done": done}

    async def batch_create(request: web.Request) -> web.Response:
        fake.paths.append(request.path)
        fake.api_keys.append(request.headers.get("x-goog-api-key", ""))
        body = await request.json()
        name = f"batches/fake{len(fake.batches) + 1}"
        fake.batches[name] = body["batch"]["inputConfig"]["requests"]["requests"]
        model = request.match_info["model"]
        fake.batch_models[name] = model
        return web.json_response(batch_view(name, model, done=False))

    async def batch_get(request: web.Request) -> web.Response:
        name = f"batches/{request.match_info['id']}"
        if name not in fake.batches:
            return web.json_response(
                {"error": {"code": 404, "message": "no such batch", "status": "NOT_FOUND"}},
                status=404,
            )
        if fake.fail_polls_with:
            status = fake.fail_polls_with.pop(0)
            return web.json_response(
                {"error": {"code": status, "message": "fake failure", "status": "UNAVAILABLE"}},
                status=status,
            )
        fake.batch_polls.append(name)
        done = fake.batch_polls.count(name) > fake.polls_before_done
        return web.json_response(batch_view(name, fake.batch_models[name], done))

    app = web.Application()
    app.router.add_post("/{version}/models/{model}:generateContent", generate)
    app.router.add_post("/{version}/models/{model}:batchGenerateContent", batch_create)
    app.router.add_get("/{version}/batches/{id}", batch_get)
    return app


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- the link analyzer wired to the fakes ----------------------------------------------------


def analyzer_config(gemini_base_url: str | None, **overrides: Any) -> LinkAnalyzerConfig:
    data: dict[str, Any] = {
        "fetch": {"allow_networks": ["127.0.0.0/8"], "total_timeout_s": 5},
        "queue": {"lease_s": 2, "backoff_base_s": 0.05, "backoff_max_s": 0.2},
    }
    if gemini_base_url is not None:
        data["gemini"] = {"api_key": "test-key", "base_url": gemini_base_url}
    data.update(overrides)
    return LinkAnalyzerConfig.model_validate(data)


async def start_control_plane(
    aiohttp_client: Any,
    *,
    db_dsn: str,
    redis_url: str,
    tmp_path: Path,
    gemini_url: str,
    sync_deadline_s: float,
) -> tuple[Any, dict[str, str]]:
    """A real control plane (embedded PostgreSQL and Redis) with the link analyzer pointed at the
    fake Gemini; returns the test client and the bootstrap admin's auth header."""
    from control_plane.app import create_app
    from control_plane.config import ControlPlaneConfig
    from haetae.config import load

    cfg = load(ControlPlaneConfig, "")
    cfg = cfg.model_copy(
        update={
            "postgres": cfg.postgres.model_copy(update={"dsn": SecretStr(db_dsn)}),
            "redis": cfg.redis.model_copy(update={"url": SecretStr(redis_url)}),
            "auth": cfg.auth.model_copy(update={"bootstrap_token_file": tmp_path / "admin.token"}),
            "link_analyzer": analyzer_config(gemini_url, sync_deadline_s=sync_deadline_s),
        }
    )
    client = await aiohttp_client(create_app(cfg))
    token = (tmp_path / "admin.token").read_text().strip()
    return client, {"Authorization": f"Bearer {token}"}
