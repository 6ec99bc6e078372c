"""``haetae worker``: run link-analysis workers until SIGTERM/SIGINT, then drain gracefully.

The CLI calls :func:`run_worker` with the loaded control-plane config; ``python -m
link_analyzer.runner [config.yaml]`` does the same on its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import redis.asyncio as aioredis

from link_analyzer.config import LinkAnalyzerConfig
from link_analyzer.service import LinkAnalyzerService
from link_analyzer.worker import Worker

log = logging.getLogger("haetae.link_analyzer.runner")


async def run_worker(
    config: LinkAnalyzerConfig,
    redis_url: str,
    *,
    stop: asyncio.Event | None = None,
    concurrency: int | None = None,
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # No socket timeout: the worker blocks on BLPOP while idle.
    client = aioredis.Redis.from_url(redis_url, health_check_interval=30)
    try:
        async with LinkAnalyzerService(config, client) as service:
            if not service.ai_enabled:
                log.warning("GEMINI_API_KEY is not set: the AI stage is disabled")
            worker = Worker(
                service.queue,
                service.handle,
                concurrency=concurrency or config.queue.worker_concurrency,
                metrics=service.metrics,
            )
            log.info("link-analysis worker %s started", worker.worker_id)
            await worker.run(stop, grace_s=config.queue.job_timeout_s)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    from control_plane.config import load_config

    args = sys.argv[1:] if argv is None else argv
    cfg = load_config(args[0] if args else None)
    if cfg.redis.url is None:
        print("the link-analysis worker needs HAETAE_REDIS_URL", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.logging.level)
    asyncio.run(run_worker(cfg.link_analyzer, cfg.redis.url.get_secret_value()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
