"""`haetae up`: a cache warm-up of the link analyzer's recent results reaches the agent's L1
(no loader registered by a test: what the shipped control plane registers by itself)."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from e2e_stack import running_up, wait_for

from haetae.cache import keys as ck
from link_analyzer.cache import LayeredAnalysisCache, analysis_key, metadata_key

URL_KEY = "0123456789abcdef0123456789abcdef"
CONTENT_HASH = "c" * 64


async def store_result(redis_url: str) -> None:
    """A result as a link-analyzer worker stores it, through the same cache class."""
    redis = aioredis.Redis.from_url(redis_url)
    cache = LayeredAnalysisCache.build(redis, follow=False)
    try:
        page = {"url": "https://example.com/", "title": "Example", "content_hash": CONTENT_HASH}
        await cache.put_metadata(URL_KEY, page, 600)
        await cache.put_analysis(CONTENT_HASH, {"summary": "an example"}, 600)
    finally:
        await cache.aclose()
        await redis.aclose()


async def drop_from_l2_and_read_agent_l1(redis_url: str, socket: Path) -> list[Any]:
    """Delete the values from L2 behind everyone's back, then read them on the agent's socket:
    what comes back can only come from the agent's L1."""
    redis = aioredis.Redis.from_url(redis_url)
    agent = aioredis.Redis(unix_socket_path=str(socket))
    try:
        keys = [metadata_key(URL_KEY), analysis_key(CONTENT_HASH)]
        assert await redis.delete(*(ck.value_key(k) for k in keys)) == 2
        return [await agent.get(k) for k in keys]
    finally:
        await agent.aclose()
        await redis.aclose()


def test_warmup_reaches_the_agent_l1(tmp_path: Path) -> None:
    with running_up(tmp_path) as up:
        redis_url = f"unix://{up.data_dir / 'redis' / 'redis.sock'}"
        asyncio.run(store_result(redis_url))

        def post_warmup() -> str | None:
            req = urllib.request.Request(
                f"http://127.0.0.1:{up.cp_port}/admin/cache/warmup",
                data=orjson.dumps({"source": "recent", "namespace": "la"}),
                headers=up.admin_headers | {"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    return resp.headers["Location"]
            except OSError:
                return None

        location = wait_for(post_warmup, 30, "POST /admin/cache/warmup answering 202")

        def finished() -> dict[str, Any] | None:
            req = urllib.request.Request(
                f"http://127.0.0.1:{up.cp_port}{location}", headers=up.admin_headers
            )
            with urllib.request.urlopen(req, timeout=5) as resp:
                job: dict[str, Any] = orjson.loads(resp.read())
            return job if job["status"] == "finished" else None

        job = wait_for(finished, 30, "the warm-up job to finish")
        assert job["error"] is None and job["done"] == 2 and job["failed"] == 0, job
        # Acknowledged by the agent's L1 (node agent-<agent id>) after it copied the keys.
        assert "agent-local-demo" in job["l1s"]["applied"], job
        values = asyncio.run(
            drop_from_l2_and_read_agent_l1(redis_url, up.data_dir / "agent" / "l1.sock")
        )
        assert all(v is not None for v in values), values
