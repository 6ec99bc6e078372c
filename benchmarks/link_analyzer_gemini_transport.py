"""Micro-benchmark: CPU per Gemini call through the google-genai SDK, by HTTP transport.

100 ``generate_content`` calls in flight at once (as in the 100-concurrent-analyses goal)
against the fake Gemini in a child process; the SDK sends through an ``httpx.AsyncClient``
(``HttpOptions.httpx_async_client``, the analyzer before) or an ``aiohttp.ClientSession``
(``HttpOptions.aiohttp_client``, the analyzer now). CPU time of this process per call, best of
``--rounds``; the request building, the response parsing and the answer's validation included.

    .venv/bin/python benchmarks/link_analyzer_gemini_transport.py     # --n 100 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import httpx
from google import genai
from google.genai import types
from link_analyzer_fakes import remote_fakes

from link_analyzer.gemini import ANALYSIS_JSON_SCHEMA, AnalysisInput, parse_response

ITEM = AnalysisInput(
    url="https://news.example/1",
    title="서울 지하철 기본요금 인상 소식",
    description="서울시는 다음 달부터 지하철 기본요금을 올린다고 밝혔다. " * 4,
    site_name="예시뉴스",
    text="본문 " * 300,
)


async def per_call_cpu(base_url: str, transport: str, n: int, rounds: int) -> float:
    common = {
        "api_version": "v1beta",
        "base_url": base_url,
        "timeout": 30_000,
        "retry_options": types.HttpRetryOptions(attempts=1),
    }
    if transport == "httpx":
        http: httpx.AsyncClient | aiohttp.ClientSession = httpx.AsyncClient(timeout=30)
        options = types.HttpOptions(**common, httpx_async_client=http)
    else:
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        options = types.HttpOptions(**common, aiohttp_client=http)
    client = genai.Client(api_key="bench-key", http_options=options)
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_json_schema=ANALYSIS_JSON_SCHEMA,
        temperature=0.2,
        max_output_tokens=1024,
    )

    async def one() -> None:
        response = await client.aio.models.generate_content(
            model="gemini-2.5-flash", contents=ITEM.contents(), config=config
        )
        parse_response(response, "gemini-2.5-flash")

    await asyncio.gather(*(one() for _ in range(n)))  # warm: connections, imports
    best = float("inf")
    for _ in range(rounds):
        c0 = time.process_time()
        await asyncio.gather(*(one() for _ in range(n)))
        best = min(best, time.process_time() - c0)
    await client.aio.aclose()
    if isinstance(http, httpx.AsyncClient):
        await http.aclose()
    else:
        await http.close()
    return best / n


async def main(args: argparse.Namespace) -> None:
    async with remote_fakes(origin_latency=0.0) as up:
        print(f"{'SDK transport':34} CPU ms per call ({args.n} in flight, best of {args.rounds})")
        for transport, label in (
            ("httpx", "httpx.AsyncClient (before)"),
            ("aiohttp", "aiohttp.ClientSession (now)"),
        ):
            cpu = await per_call_cpu(up.gemini_url, transport, args.n, args.rounds)
            print(f"{label:34} {cpu * 1000:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
