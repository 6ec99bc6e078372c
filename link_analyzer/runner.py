"""``haetae worker``: run link-analysis workers until SIGTERM/SIGINT, then drain gracefully.

The CLI calls :func:`run_worker` with the loaded control-plane config; ``python -m
link_analyzer.runner [config.yaml]`` does the same on its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from haetae.backing import blocking_redis
from link_analyzer.config import LinkAnalyzerConfig
from link_analyzer.service import LinkAnalyzerService
from link_analyzer.worker import Worker, WorkerMetricsServer

log = logging.getLogger("haetae.link_analyzer.runner")

# The control plane's defaults (redis.max_connections, redis.pool_timeout_s).
REDIS_MAX_CONNECTIONS = 200
REDIS_POOL_TIMEOUT_S = 2.0


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
    client = blocking_redis(
        redis_url, max_connections=REDIS_MAX_CONNECTIONS, pool_timeout_s=REDIS_POOL_TIMEOUT_S
    )
    try:
        async with LinkAnalyzerService(config, client, cache_metrics=True) as service:
            if not service.ai_enabled:
                log.warning("GEMINI_API_KEY is not set: the AI stage is disabled")
            worker = Worker(
                service.queue,
                service.handle,
                concurrency=concurrency or config.queue.worker_concurrency,
                metrics=service.metrics,
            )
            # The worker's own /metrics and /health (loopback), when a port is configured.
            q = config.queue
            server = None
            if q.worker_metrics_port is not None:
                server = WorkerMetricsServer(
                    worker, host=q.worker_metrics_host, port=q.worker_metrics_port, ping=client.ping
                )
                try:
                    port = await server.start()
                    log.info("worker metrics on http://%s:%d/metrics", q.worker_metrics_host, port)
                except OSError as exc:
                    # Another worker on this host has the port: work on, without /metrics
                    # (give each worker its own --metrics-port).
                    log.error("worker metrics unavailable on port %s: %s", server.port, exc)
                    await server.aclose()
                    server = None
            log.info("link-analysis worker %s started", worker.worker_id)
            try:
                await worker.run(stop, grace_s=config.queue.job_timeout_s)
            finally:
                if server is not None:
                    await server.aclose()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await client.aclose()


def _worker_process(
    config: LinkAnalyzerConfig, redis_url: str, log_level: str, json_logs: bool | None
) -> None:
    if json_logs is None:
        logging.basicConfig(level=log_level.upper())
    else:
        from haetae.logs import setup_logging

        setup_logging(log_level, json_format=json_logs, service="haetae-worker")
    asyncio.run(_orphan_safe_worker(config, redis_url, os.getppid()))


async def _orphan_safe_worker(config: LinkAnalyzerConfig, redis_url: str, parent: int) -> None:
    """``run_worker`` that also drains and stops when its supervising parent is gone."""
    stop = asyncio.Event()

    async def watch_parent() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 (no event tells us; poll the ppid)
            await asyncio.sleep(1.0)
        log.warning("worker supervisor %d is gone: draining", parent)
        stop.set()

    watcher = asyncio.create_task(watch_parent())
    try:
        await run_worker(config, redis_url, stop=stop)
    finally:
        watcher.cancel()


def run_worker_processes(
    config: LinkAnalyzerConfig,
    redis_url: str,
    processes: int,
    *,
    log_level: str = "INFO",
    json_logs: bool | None = None,
) -> int:
    """``haetae worker --processes N``: N worker processes on the same queue, one event loop
    each, so concurrent analyses use more than one core (an analysis costs a few ms of CPU:
    one loop runs out of CPU long before it runs out of concurrency). SIGTERM/SIGINT are passed
    on; each child drains its jobs and exits. Worker ``i`` serves its /metrics on the
    configured port + ``i`` (0: any free port; none: off). Children log as ``haetae worker``
    does with ``json_logs`` set (ECS JSON or text), else with Python's basic handler. Returns
    the worst exit code."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    base_port = config.queue.worker_metrics_port
    children: list[mp.process.BaseProcess] = []

    def forward(signum: int, _frame: object) -> None:
        for proc in children:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)

    # Before the first child starts, so that no signal can orphan one (a spawned child starts
    # with the default handlers).
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    for i in range(processes):
        child_cfg = config
        if base_port:  # a fixed port: one per process
            queue = config.queue.model_copy(update={"worker_metrics_port": base_port + i})
            child_cfg = config.model_copy(update={"queue": queue})
        proc = ctx.Process(
            target=_worker_process,
            args=(child_cfg, redis_url, log_level, json_logs),
            name=f"haetae-worker-{i}",
        )
        proc.start()
        children.append(proc)
    try:
        for child in children:
            child.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return max((abs(proc.exitcode or 0) for proc in children), default=0)


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
