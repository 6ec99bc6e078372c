"""The Prometheus HTTP API's routes: ``/api/v1/query``, ``query_range``, ``series``, ``labels``,
``label/<name>/values``, ``metadata`` and ``status/buildinfo``, as GET or form-encoded POST.

Callers need an admin token with the ``read`` scope as ``Authorization: Bearer`` (what Grafana's
data source and promtool's ``--http.config.file`` send). Every answer, errors included, is in
Prometheus's envelope: clients parse it.
"""

from __future__ import annotations

import platform
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import MultiDict, MultiMapping

from control_plane.appkeys import CONFIG, INGESTOR, POOL
from control_plane.auth.middleware import require_principal
from control_plane.auth.principal import Scope, TokenKind
from control_plane.promapi import catalog
from control_plane.promapi.engine import QueryEngine
from control_plane.promapi.errors import ErrorType, PromApiError, from_problem, success
from control_plane.promapi.params import (
    merged,
    read_instant,
    read_metadata,
    read_range,
    read_series,
)
from control_plane.promapi.remote import RemoteStore
from haetae.web.faults import fault_for
from haetae.web.problem import ProblemError
from haetae.web.validation import LABEL_NAME_RE, MAX_LABEL_NAME, path_text

# What promtool and Grafana read from buildinfo: a Prometheus version they know the API of.
PROMETHEUS_API_VERSION = "2.42.0"
# A POST form is parameters only: far less than any body the control plane takes.
MAX_FORM_BYTES = 256 * 1024

Endpoint = Callable[[web.Request, MultiMapping[str]], Awaitable[web.Response]]


@dataclass
class PromApi:
    engine: QueryEngine
    # Set when promapi.remote_read_url is: queries older than retention go there.
    remote: RemoteStore | None
    retention_s: float
    clock: Callable[[], float] = time.time


PROMAPI: web.AppKey[PromApi] = web.AppKey("promapi", PromApi)


def setup_routes(app: web.Application) -> None:
    """Mount the routes and the API's cleanup context (after ingest's, whose windows it reads)."""
    for path, endpoint in (
        ("/api/v1/query", instant_query),
        ("/api/v1/query_range", range_query),
        ("/api/v1/series", series),
        ("/api/v1/labels", labels),
        ("/api/v1/label/{name}/values", label_values),
        ("/api/v1/metadata", metadata),
        ("/api/v1/status/buildinfo", buildinfo),
    ):
        handler = _prometheus_envelope(endpoint)
        app.router.add_get(path, handler)
        app.router.add_post(path, handler)
    app.cleanup_ctx.append(promapi_ctx)


async def promapi_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    cfg = config.promapi
    windows = app[INGESTOR].windows if INGESTOR in app else None
    engine = QueryEngine(app[POOL], windows, cfg)
    retention_s = config.retention.retention_days * 86400.0
    if cfg.remote_read_url is None:
        app[PROMAPI] = PromApi(engine, None, retention_s)
        yield
        return
    headers = {}
    if cfg.remote_bearer_token is not None:
        headers["Authorization"] = f"Bearer {cfg.remote_bearer_token.get_secret_value()}"
    async with aiohttp.ClientSession() as session:
        remote = RemoteStore(
            session, cfg.remote_read_url, timeout_s=cfg.remote_timeout_s, headers=headers
        )
        app[PROMAPI] = PromApi(engine, remote, retention_s)
        yield


def _prometheus_envelope(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        try:
            principal = require_principal(request, TokenKind.ADMIN)
            if not principal.has_scope(Scope.READ):
                raise PromApiError(ErrorType.FORBIDDEN, "this API needs the 'read' scope")
            return await endpoint(request, await _parameters(request))
        except PromApiError as exc:
            return exc.response()
        except ProblemError as exc:
            return from_problem(exc).response()
        except Exception as exc:
            fault = fault_for(exc)
            if fault is None:
                raise
            # A database or Redis outage: Prometheus's "unavailable", retryable.
            headers = {"Retry-After": str(fault.retry_after_s)} if fault.retry_after_s else None
            return PromApiError(ErrorType.UNAVAILABLE, fault.detail, headers=headers).response()

    handler.__name__ = endpoint.__name__
    handler.__doc__ = endpoint.__doc__
    return handler


async def _parameters(request: web.Request) -> MultiMapping[str]:
    if request.method != "POST":
        return request.query
    # What Prometheus's clients send; a multipart body carries nothing a query needs.
    if request.content_type not in ("application/x-www-form-urlencoded", ""):
        raise PromApiError(
            ErrorType.BAD_DATA, "a POST carries its parameters as application/x-www-form-urlencoded"
        )
    if (request.content_length or 0) > MAX_FORM_BYTES:
        raise PromApiError(ErrorType.BAD_DATA, f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        form = await request.post()
    except ValueError as exc:  # an undecodable body
        raise PromApiError(ErrorType.BAD_DATA, f"the form cannot be read: {exc}") from None
    fields: MultiDict[str] = MultiDict((k, v) for k, v in form.items() if isinstance(v, str))
    return merged(request.query, fields)


async def instant_query(request: web.Request, params: MultiMapping[str]) -> web.Response:
    api = request.app[PROMAPI]
    p, at = read_instant(params, now=api.clock())
    if _past_retention(api, at):
        assert api.remote is not None
        return await api.remote.forward("query", params)
    data = await api.engine.instant(
        p.query, at, timeout_s=p.timeout, lookback_s=p.lookback_delta, limit=p.limit
    )
    return success(data)


async def range_query(request: web.Request, params: MultiMapping[str]) -> web.Response:
    api = request.app[PROMAPI]
    q = read_range(params)
    if _past_retention(api, q.start):
        assert api.remote is not None
        return await api.remote.forward("query_range", params)
    return success(await api.engine.range(q))


def _past_retention(api: PromApi, start: float) -> bool:
    return api.remote is not None and start < api.clock() - api.retention_s


async def series(request: web.Request, params: MultiMapping[str]) -> web.Response:
    p = read_series(params)
    if not p.match:
        raise PromApiError(ErrorType.BAD_DATA, "no match[] parameter provided")
    selectors = catalog.parse_selectors(p.match)
    found = await catalog.find_series(request.app[POOL], selectors, p.start, p.end, p.limit)
    return success(found)


async def labels(request: web.Request, params: MultiMapping[str]) -> web.Response:
    p = read_series(params)
    selectors = catalog.parse_selectors(p.match)
    names = await catalog.label_names(request.app[POOL], selectors, p.start, p.end, p.limit)
    return success(names)


async def label_values(request: web.Request, params: MultiMapping[str]) -> web.Response:
    name = path_text(request, "name", MAX_LABEL_NAME)
    if not _LABEL_NAME.fullmatch(name):
        raise PromApiError(ErrorType.BAD_DATA, f"invalid label name: {name[:100]!r}")
    p = read_series(params)
    selectors = catalog.parse_selectors(p.match)
    values = await catalog.label_values(request.app[POOL], name, selectors, p.start, p.end, p.limit)
    return success(values)


async def metadata(request: web.Request, params: MultiMapping[str]) -> web.Response:
    p = read_metadata(params)
    return success(await catalog.metadata(request.app[POOL], p.metric, p.limit))


async def buildinfo(request: web.Request, params: MultiMapping[str]) -> web.Response:
    return success(
        {
            "version": PROMETHEUS_API_VERSION,
            "revision": "haetae",
            "branch": "haetae",
            "buildUser": "haetae",
            "buildDate": "",
            "goVersion": f"python{platform.python_version()}",
        }
    )


_LABEL_NAME = re.compile(LABEL_NAME_RE)
