"""The control plane's one app factory: config in, a ready aiohttp application out.

Resources are opened and closed in order by ``cleanup_ctx`` (Postgres, Redis, auth, health,
ingest, maintenance); everything they create lives under a typed ``AppKey``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from control_plane import promapi
from control_plane.alerting.context import notify_ctx
from control_plane.api import (
    agents,
    alert_rules,
    alerts,
    cache,
    cdn,
    health,
    incident_pages,
    incidents,
    metrics,
    monitoring,
    oncall,
    remote_write,
    silences,
    tokens,
)
from control_plane.appkeys import CONFIG, HEALTH, METRICS, POOL, REDIS
from control_plane.auth import TokenStore, auth_middleware
from control_plane.auth.middleware import TOKEN_STORE
from control_plane.cache_ctx import cache_ctx
from control_plane.config import ControlPlaneConfig
from control_plane.forward import forward_ctx
from control_plane.health import HealthMonitor
from control_plane.ingest import ingest_ctx
from control_plane.maintenance import maintenance_ctx
from control_plane.rules import rules_ctx
from control_plane.store import apply_migrations, create_pool
from control_plane.telemetry import ControlPlaneMetrics, metrics_middleware
from haetae.backing import blocking_redis
from haetae.web import problem_middleware
from haetae.web.bodies import HANDLER_ARGS
from haetae.web.guard import input_guard_middleware
from link_analyzer import api as link_analyzer_api

log = logging.getLogger("haetae.control_plane")


def create_app(
    config: ControlPlaneConfig, *, metrics_: ControlPlaneMetrics | None = None
) -> web.Application:
    if config.postgres.dsn is None:
        raise ValueError("postgres.dsn must be resolved before the app is built")
    app_metrics = metrics_ or ControlPlaneMetrics()
    app = web.Application(
        # The input guard refuses what no route may see (NUL in the URL) before auth reads it;
        # the problem middleware answers both, and maps a database or Redis outage to a 503.
        middlewares=[
            metrics_middleware(app_metrics),
            problem_middleware,
            input_guard_middleware,
            auth_middleware,
        ],
        # Bodies are streamed and capped by the handlers; this is aiohttp's outer guard.
        client_max_size=config.http.max_body_bytes,
        handler_args=HANDLER_ARGS,
    )
    app[CONFIG] = config
    app[METRICS] = app_metrics
    app.cleanup_ctx.extend(
        [
            postgres_ctx,
            redis_ctx,
            auth_ctx,
            health_ctx,
            ingest_ctx,
            forward_ctx,
            maintenance_ctx,
            cache_ctx,
            rules_ctx,
            notify_ctx,
        ]
    )
    for module in (
        health,
        metrics,
        tokens,
        agents,
        monitoring,
        cache,
        cdn,
        alert_rules,
        alerts,
        silences,
        incidents,
        incident_pages,
        oncall,
        promapi,
        remote_write,
    ):
        module.setup_routes(app)
    # Also appends its cleanup context (after redis_ctx, whose client it uses).
    link_analyzer_api.setup_routes(app)
    return app


async def postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG].postgres
    assert cfg.dsn is not None
    pool = await create_pool(cfg.dsn.get_secret_value(), cfg)
    if cfg.migrate_on_start:
        async with pool.acquire() as conn:
            applied = await apply_migrations(conn)
        if applied:
            log.info("applied migrations %s", applied)
    app[POOL] = pool
    app[METRICS].watch_pool(pool)
    yield
    await close_pool(pool)


# asyncpg's close() waits for every acquired connection to be released: a task still holding
# one (a retry loop against a PostgreSQL that is gone) would hang shutdown forever.
POOL_CLOSE_TIMEOUT_S = 10.0


async def close_pool(pool: asyncpg.Pool, timeout_s: float = POOL_CLOSE_TIMEOUT_S) -> None:
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except TimeoutError:
        log.warning("PostgreSQL pool not closed within %.0f s; terminating it", timeout_s)
        pool.terminate()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG].redis
    if cfg.url is None:
        yield
        return
    client = blocking_redis(
        cfg.url.get_secret_value(),
        max_connections=cfg.max_connections,
        pool_timeout_s=cfg.pool_timeout_s,
        socket_timeout_s=cfg.socket_timeout_s,
    )
    app[REDIS] = client
    yield
    await client.aclose()


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG].auth
    store = TokenStore(
        app[POOL],
        preshared_enrolment=cfg.enrolment_token.get_secret_value() if cfg.enrolment_token else None,
    )
    created = await store.ensure_bootstrap_admin(cfg.bootstrap_token_file)
    if created:
        log.info("created the first admin token in %s", cfg.bootstrap_token_file)
    app[TOKEN_STORE] = store
    yield


async def health_ctx(app: web.Application) -> AsyncIterator[None]:
    monitor = HealthMonitor(app[CONFIG].health, app[METRICS])
    pool = app[POOL]
    monitor.add("postgres", "datastore", lambda: pool.fetchval("SELECT 1"))
    if REDIS in app:
        client = app[REDIS]
        # Redis backs caches and queues, not ingest: its loss degrades the service.
        monitor.add("redis", "datastore", client.ping, critical=False)
    await monitor.start()
    app[HEALTH] = monitor
    yield
    await monitor.stop()
