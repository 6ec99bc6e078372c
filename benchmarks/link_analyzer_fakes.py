"""Shared pieces of the link-analyzer benchmarks: a Redis, a fake origin and a fake Gemini with
configurable latency, percentiles and a table printer.

Not a benchmark itself. The fakes are aiohttp apps on loopback (the same shape as the ones in
``tests/integration/link_analyzer/la_fakes.py``, plus latency and many hosts): the analyzer's
per-host politeness limits key on ``host:port``, so the origin can listen on several ports to look
like several sites, as 100 links shared by users would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from haetae.embedded import EmbeddedRedis  # noqa: E402
from link_analyzer.config import LinkAnalyzerConfig  # noqa: E402

ANSWER = {
    "summary": "서울 지하철 기본요금이 1,550원으로 오른다.",
    "category": "news",
    "topics": ["교통", "요금"],
    "sentiment": "neutral",
    "language": "ko",
}


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """``HAETAE_BENCH_REDIS_URL`` or an embedded redis-server in a temporary directory."""
    external = os.environ.get("HAETAE_BENCH_REDIS_URL")
    if external:
        yield external
        return
    with tempfile.TemporaryDirectory(prefix="la-bench-") as d:
        server = EmbeddedRedis(Path(d) / "redis", persist=False)
        try:
            yield server.start()
        finally:
            server.stop()


def page(content: int, *, image: bool = False) -> str:
    """A realistic article head whose salient text depends only on ``content``."""
    img = f'<meta property="og:image" content="/img/{content}.png">' if image else ""
    return f"""<!doctype html><html lang="ko"><head><meta charset="utf-8">
<title>기사 {content} - 예시뉴스</title>
<meta property="og:type" content="article">
<meta property="og:title" content="서울 지하철 기본요금 인상 소식 {content}">
<meta property="og:description" content="서울시는 다음 달부터 지하철 기본요금을 올린다고
밝혔다 (기사 번호 {content}). 시민 부담을 줄이기 위한 정기권 할인도 함께 확대된다.">
<meta property="og:site_name" content="예시뉴스">{img}
<script type="application/ld+json">{{"@context":"https://schema.org","@type":"NewsArticle",
"headline":"서울 지하철 기본요금 인상 {content}","author":{{"@type":"Person","name":"김기자"}}}}
</script></head><body><article><p>본문 {content}</p></article>
{"<p>padding paragraph</p>" * 200}</body></html>"""


@dataclass
class FakeOrigin:
    """``/page/{content}/{variant}`` answers after ``latency_s`` with the page of ``content``:
    different variants are different URLs with the same content."""

    latency_s: float = 0.0
    image: bool = False
    hits: int = 0
    ports: list[int] = field(default_factory=list)

    def url(self, content: int, variant: int = 0, *, host: int = 0) -> str:
        port = self.ports[host % len(self.ports)]
        return f"http://127.0.0.1:{port}/page/{content}/{variant}"

    def app(self) -> web.Application:
        async def serve(request: web.Request) -> web.Response:
            self.hits += 1
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            content = int(request.match_info["content"])
            return web.Response(text=page(content, image=self.image), content_type="text/html")

        async def image(request: web.Request) -> web.Response:
            return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\0" * 2048, content_type="image/png")

        app = web.Application()
        app.router.add_get("/page/{content}/{variant}", serve)
        app.router.add_get("/img/{name}", image)
        return app


@dataclass
class FakeGemini:
    """Speaks ``generateContent``; counts calls; answers after ``latency_s``."""

    latency_s: float = 0.0
    calls: int = 0
    base_url: str = ""

    def app(self) -> web.Application:
        async def generate(request: web.Request) -> web.Response:
            self.calls += 1
            body = await request.json()
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            parts = body["contents"][0]["parts"]
            return web.json_response(
                {
                    "candidates": [
                        {
                            "content": {
                                "role": "model",
                                "parts": [{"text": orjson.dumps(ANSWER).decode()}],
                            },
                            "finishReason": "STOP",
                            "index": 0,
                        }
                    ],
                    "usageMetadata": {
                        "promptTokenCount": 200 + 258 * (len(parts) - 1),
                        "candidatesTokenCount": 50,
                        "totalTokenCount": 250 + 258 * (len(parts) - 1),
                    },
                    "modelVersion": request.match_info["model"],
                }
            )

        app = web.Application()
        app.router.add_post("/{version}/models/{model}:generateContent", generate)
        return app


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve(app: web.Application, *, listeners: int = 1) -> AsyncIterator[list[int]]:
    """Run ``app`` on ``listeners`` loopback ports; yields the ports."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ports = []
    try:
        for _ in range(listeners):
            sock = _loopback_socket()
            ports.append(sock.getsockname()[1])
            await web.SockSite(runner, sock).start()
        yield ports
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def fakes(
    origin: FakeOrigin, gemini: FakeGemini, *, hosts: int = 1
) -> AsyncIterator[tuple[FakeOrigin, FakeGemini]]:
    async with serve(origin.app(), listeners=hosts) as ports, serve(gemini.app()) as gports:
        origin.ports = ports
        gemini.base_url = f"http://127.0.0.1:{gports[0]}/"
        yield origin, gemini


@dataclass
class RemoteFakes:
    """Handle on fakes running in another process (their CPU is not charged to ours)."""

    origin: FakeOrigin
    gemini_url: str

    def url(self, content: int, variant: int = 0, *, host: int = 0) -> str:
        return self.origin.url(content, variant, host=host)

    async def gemini_calls(self) -> int:
        import httpx

        async with httpx.AsyncClient() as client:
            return int((await client.get(self.gemini_url + "calls")).text)


def _fakes_main(conn: Any, origin_latency: float, gemini_latency: float, hosts: int) -> None:
    async def run() -> None:
        origin, gemini = FakeOrigin(latency_s=origin_latency), FakeGemini(latency_s=gemini_latency)
        gapp = gemini.app()

        async def calls(request: web.Request) -> web.Response:
            return web.Response(text=str(gemini.calls))

        gapp.router.add_get("/calls", calls)
        async with serve(origin.app(), listeners=hosts) as ports, serve(gapp) as gports:
            conn.send((ports, f"http://127.0.0.1:{gports[0]}/"))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(run())


@contextlib.asynccontextmanager
async def remote_fakes(
    *, origin_latency: float, gemini_latency: float = 0.0, hosts: int = 1
) -> AsyncIterator[RemoteFakes]:
    """The fake origin and Gemini in a child process, as real upstreams are."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_fakes_main, args=(child, origin_latency, gemini_latency, hosts), daemon=True
    )
    proc.start()
    try:
        loop = asyncio.get_running_loop()
        ports, gemini_url = await loop.run_in_executor(None, parent.recv)
        yield RemoteFakes(FakeOrigin(ports=ports), gemini_url)
    finally:
        parent.send("stop")
        await loop.run_in_executor(None, proc.join, 10)
        if proc.is_alive():
            proc.kill()


def analyzer_config(gemini_base_url: str | None, **overrides: Any) -> LinkAnalyzerConfig:
    """Production defaults, except that loopback origins are allowed (the fakes live there)."""
    data: dict[str, Any] = {"fetch": {"allow_networks": ["127.0.0.0/8"]}}
    if gemini_base_url is not None:
        data["gemini"] = {"api_key": "bench-key", "base_url": gemini_base_url}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return LinkAnalyzerConfig.model_validate(data)


def redis_client(url: str, *, blocking: bool = False) -> Any:
    """redis-py's default pool (at most 100 connections; a command that finds them all busy fails
    at once with "Too many connections": the control plane's client before it moved to a
    blocking pool), or a blocking pool where such a command waits for a free connection (as the
    control plane's ``redis_ctx`` builds it now)."""
    import redis.asyncio as aioredis

    if not blocking:
        return aioredis.Redis.from_url(url)
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=100, timeout=10)
    return aioredis.Redis(connection_pool=pool)


def pct(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50": pct(ms, 50),
        "p95": pct(ms, 95),
        "p99": pct(ms, 99),
        "max": max(ms) if ms else float("nan"),
        "mean": statistics.fmean(ms) if ms else float("nan"),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
