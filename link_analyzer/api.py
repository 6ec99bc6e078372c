"""The link analyzer's HTTP API, mounted by the control plane: ``setup_routes(app)``.

/api routes are not covered by the /admin auth middleware rule, so each handler checks the
caller itself: analysing needs an admin token with ``write`` (it fetches the web and spends model
money), lookups need ``read``, dropping a cache entry needs ``admin``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import StrictBool
from redis.exceptions import RedisError

from control_plane.appkeys import CACHE, CONFIG, METRICS, REDIS
from control_plane.auth.middleware import forbidden, require_principal
from control_plane.auth.principal import Scope, TokenKind
from haetae.cache import InvalidationError
from haetae.web import validation
from haetae.web.bodies import json_response
from haetae.web.problem import ProblemError, invalid
from haetae.web.validation import Model, Text
from link_analyzer.cache import NAMESPACE
from link_analyzer.errors import (
    AnalyzerError,
    FetchRefused,
    FetchTimeout,
    UpstreamStatus,
)
from link_analyzer.metrics import LinkAnalyzerMetrics
from link_analyzer.queue import Enqueued, Priority, QueueError
from link_analyzer.service import LinkAnalyzerService
from link_analyzer.targets import checked_target
from link_analyzer.urls import MAX_URL_LENGTH, CanonicalUrl, UrlRefused

LINK_ANALYZER: web.AppKey[LinkAnalyzerService] = web.AppKey("link_analyzer", LinkAnalyzerService)

_MAX_BODY = 16 * 1024
_TASK_ID = re.compile(r"^[0-9a-f]{24}$")
_URL_HASH = re.compile(r"^[0-9a-f]{32}$")
_PRIORITIES = {p.name.lower(): p for p in Priority}


def setup_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(link_analyzer_ctx)
    app.router.add_post("/api/v1/analyze", analyze_sync)
    app.router.add_post("/api/v1/analyze/async", analyze_async)
    app.router.add_get("/api/v1/analyze/status/{task_id}", task_status)
    app.router.add_get("/api/v1/cache/stats", cache_stats)
    app.router.add_delete("/api/v1/cache/{url_hash}", cache_delete)


async def link_analyzer_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG].link_analyzer
    if not cfg.enabled or REDIS not in app:
        yield
        return
    metrics = LinkAnalyzerMetrics(app[METRICS].registry)
    async with LinkAnalyzerService(cfg, app[REDIS], metrics=metrics) as service:
        app[LINK_ANALYZER] = service
        if CACHE in app:
            # Results live in L2 (written by whichever process analysed the URL): warm-ups copy
            # the recent and hot ones into every L1 (POST /admin/cache/warmup, namespace "la").
            app[CACHE].register_stored(
                NAMESPACE, hot=service.cache.hot_keys, recent=service.cache.recent_keys
            )
        yield


def _service(request: web.Request) -> LinkAnalyzerService:
    service = request.app.get(LINK_ANALYZER)
    if service is None:
        raise ProblemError(
            503,
            "Link analyzer unavailable",
            detail="the link analyzer is disabled or no Redis is configured",
            type_="link-analyzer-unavailable",
            hint="set HAETAE_REDIS_URL and link_analyzer.enabled",
        )
    return service


def _authorize(request: web.Request, scope: Scope) -> None:
    principal = require_principal(request, TokenKind.ADMIN)
    if not principal.has_scope(scope):
        raise forbidden(f"this route needs the {scope.value!r} scope")


class AnalyzeBody(Model):
    url: Annotated[str, Text(MAX_URL_LENGTH, min_length=1)]
    refresh: StrictBool = False


class AnalyzeAsyncBody(AnalyzeBody):
    priority: Literal["high", "normal", "low"] = "normal"


def _target(service: LinkAnalyzerService, url: str) -> CanonicalUrl:
    """The URL's static checks (no DNS): a 400 for what is no public URL, a 422 for an
    internal target, as the guard would answer after resolving it."""
    try:
        return checked_target(url, service.fetcher.policy)
    except AnalyzerError as exc:
        raise _problem(exc) from None


async def analyze_sync(request: web.Request) -> web.Response:
    _authorize(request, Scope.WRITE)
    service = _service(request)
    body = await validation.body(request, AnalyzeBody, max_bytes=_MAX_BODY)
    canon = _target(service, body.url)
    try:
        async with asyncio.timeout(service.config.sync_deadline_s):
            report = await service.analyzer.analyze(body.url, refresh=body.refresh)
    except TimeoutError:
        # Past the deadline the work goes on as a queued job; the caller polls for it.
        enq = await _enqueue(service, canon, body.url, body.refresh, Priority.HIGH)
        return _accepted(enq.job_id, created=enq.created, deadline=service.config.sync_deadline_s)
    except AnalyzerError as exc:
        raise _problem(exc) from None
    return json_response(report)


async def analyze_async(request: web.Request) -> web.Response:
    _authorize(request, Scope.WRITE)
    service = _service(request)
    body = await validation.body(request, AnalyzeAsyncBody, max_bytes=_MAX_BODY)
    # The same refusals as the sync route, before anything is queued (DNS and the guard's
    # address checks still run in the worker, at connect time).
    canon = _target(service, body.url)
    enq = await _enqueue(service, canon, body.url, body.refresh, _PRIORITIES[body.priority])
    return _accepted(enq.job_id, created=enq.created)


async def task_status(request: web.Request) -> web.Response:
    _authorize(request, Scope.READ)
    service = _service(request)
    task_id = validation.path_text(request, "task_id", 24)
    if not _TASK_ID.match(task_id):
        raise invalid("path.task_id", "a task id is 24 lower-case hex characters")
    try:
        view = await service.queue.status(task_id)
    except QueueError as exc:
        raise _queue_down(exc) from exc
    if view is None:
        raise ProblemError(
            404,
            "Not Found",
            detail=f"no task {task_id} (unknown, or its result has expired)",
            type_="not-found",
            field="path.task_id",
        )
    return json_response(view.as_dict())


async def cache_stats(request: web.Request) -> web.Response:
    _authorize(request, Scope.READ)
    service = _service(request)
    depth: dict[str, Any]
    cost: dict[str, Any]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    # Each part stays useful without the others.
    try:
        depth = dict(await service.queue.depth())
    except RedisError as exc:
        depth = {"error": str(exc)}
    try:
        cost = dict(await service.ledger.day(today))
    except RedisError as exc:
        cost = {"error": str(exc)}
    return json_response(
        {
            "cache": await service.cache.stats(),
            "queue": depth,
            "ai": {
                "enabled": service.ai_enabled,
                "model": service.config.gemini.model if service.ai_enabled else None,
                "cost_today": cost,
            },
        }
    )


async def cache_delete(request: web.Request) -> web.Response:
    _authorize(request, Scope.ADMIN)
    service = _service(request)
    url_hash = validation.path_text(request, "url_hash", 32)
    if not _URL_HASH.match(url_hash):
        raise invalid("path.url_hash", "a URL hash is 32 lower-case hex characters")
    try:
        deleted = await service.cache.invalidate(url_hash)
    except (RedisError, InvalidationError) as exc:
        raise ProblemError(
            503, "Cache unavailable", detail=str(exc), type_="cache-unavailable"
        ) from exc
    if not deleted:
        raise ProblemError(
            404,
            "Not Found",
            detail=f"nothing cached for {url_hash}",
            type_="not-found",
            field="path.url_hash",
        )
    return web.Response(status=204)


async def _enqueue(
    service: LinkAnalyzerService, canon: CanonicalUrl, url: str, refresh: bool, priority: Priority
) -> Enqueued:
    q = service.config.queue
    try:
        return await service.queue.enqueue(
            canon.key,
            {"url": url, "refresh": refresh},
            priority=priority,
            max_attempts=q.max_attempts,
            timeout_s=q.job_timeout_s,
        )
    except QueueError as exc:
        raise _queue_down(exc) from exc


def _accepted(job_id: str, *, created: bool, deadline: float | None = None) -> web.Response:
    body: dict[str, Any] = {
        "task_id": job_id,
        "status_url": f"/api/v1/analyze/status/{job_id}",
        "deduplicated": not created,
    }
    if deadline is not None:
        body["detail"] = f"not finished within {deadline:g} s; continuing as a queued task"
    return json_response(body, status=202, headers={"Location": body["status_url"]})


def _queue_down(exc: Exception) -> ProblemError:
    return ProblemError(
        503,
        "Queue unavailable",
        detail=str(exc),
        type_="queue-unavailable",
        headers={"Retry-After": "5"},
    )


def _problem(exc: AnalyzerError) -> ProblemError:
    if isinstance(exc, UrlRefused):
        return invalid("body.url", exc.detail, hint="send an absolute http(s) URL of a public page")
    if isinstance(exc, FetchRefused):
        return ProblemError(
            422,
            "URL refused",
            detail=str(exc),
            type_=exc.code,
            field="body.url",
            hint="only public http(s) pages are analysed",
        )
    if isinstance(exc, FetchTimeout):
        return ProblemError(504, "Origin timed out", detail=str(exc), type_=exc.code)
    if isinstance(exc, UpstreamStatus):
        return ProblemError(
            502,
            "Origin error",
            detail=str(exc),
            type_=exc.code,
            extra={"upstream_status": exc.status},
        )
    return ProblemError(502, "Analysis failed", detail=str(exc), type_=exc.code)
