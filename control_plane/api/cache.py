"""Admin API for the cache: stats per layer and host (with the hottest keys per namespace),
invalidation that waits for every L1, warm-up jobs with visible progress (keys, a named set, or
the hot keys of a namespace)."""

from __future__ import annotations

import itertools
import time
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from control_plane.api.cdn import purge_cdn
from control_plane.appkeys import CACHE, INGESTOR
from control_plane.ingest.windows import Point, SeriesWindows
from haetae.cache import InvalidationError, PurgeRequest
from haetae.cache.invalidation import LAYERS
from haetae.cache.warmup import SOURCES
from haetae.web.bodies import json_response
from haetae.web.problem import ProblemError, invalid
from haetae.web.validation import MAX_NAME, IntRange, Model, Text, path_text
from haetae.web.validation import body as read_body
from haetae.web.validation import query as read_query

_MAX_ITEMS = 10_000
_MAX_HOT = 1000
# Cache keys, tags and prefixes: what an app names its entries by (Redis takes far longer).
_MAX_KEY = 2048

CacheKey = Annotated[str, Text(_MAX_KEY, min_length=1)]
CacheKeys = Annotated[list[CacheKey], Field(max_length=_MAX_ITEMS)]
Layer = Literal["l1", "l2", "l3"]


class InvalidateBody(Model):
    keys: CacheKeys = []
    tags: CacheKeys = []
    prefixes: CacheKeys = []
    prefix: CacheKey | None = None
    layers: Annotated[list[Layer], Field(min_length=1, max_length=3)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=60, strict=True, allow_inf_nan=False)] | None = None


class WarmupBody(Model):
    keys: Annotated[list[CacheKey], Field(min_length=1, max_length=_MAX_ITEMS)] | None = None
    set: Annotated[str, Text(MAX_NAME, min_length=1)] | None = None
    source: Literal["hot", "recent"] | None = None
    namespace: Annotated[str, Text(MAX_NAME, min_length=1)] | None = None
    limit: Annotated[int, IntRange(1, _MAX_ITEMS)] = 100


class StatsQuery(Model):
    hot: Annotated[int, Field(ge=0, le=_MAX_HOT)] = 10
    window_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] | None = None


# The samples an agent-hosted L1 reports (agent/collectors/cache.py).
_HITS, _MISSES = "haetae_cache_hits_total", "haetae_cache_misses_total"
_EVICTIONS = "haetae_cache_evictions_total"
_GAUGES = {"haetae_cache_bytes": "bytes", "haetae_cache_entries": "entries"}


def _increase(points: list[Point]) -> float:
    """How much a counter grew over ``points``; a drop is a restart from zero (as in PromQL)."""
    total = 0.0
    for (_, before), (_, after) in itertools.pairwise(points):
        total += after - before if after >= before else after
    return total


def agent_cache_stats(windows: SeriesWindows, now: float, window_s: float) -> dict[str, Any]:
    """Per agent and layer: the latest reported counters and sizes, and the hit ratio over the
    last ``window_s`` seconds, from the ingest windows (pure: the clock is an argument)."""
    start = now - window_s
    # The latest point may be older than the ratio's window (agents report every interval_s).
    lookback = max(window_s, windows.window_seconds)
    agents: dict[str, dict[str, dict[str, Any]]] = {}

    def layer_of(agent_id: str, labels: Any) -> dict[str, Any] | None:
        layer = labels.get("layer")
        if not layer or "cache" in labels:
            # A named cache's series (an app's haetae.cache through the scrape): see caches.
            return None
        return agents.setdefault(agent_id, {}).setdefault(layer, {})

    for name, field_ in ((_HITS, "hits"), (_MISSES, "misses"), *_GAUGES.items()):
        for ref in windows.select(name):
            latest = windows.latest(ref.series_id, now, lookback)
            data = layer_of(ref.agent_id, ref.labels)
            if latest is None or data is None:
                continue
            data[field_] = int(latest[1])
            if name in (_HITS, _MISSES):
                # From the last point before the window, so its first interval counts too.
                base = windows.latest(ref.series_id, start, lookback)
                pts = [base] if base is not None else []
                pts += windows.points(ref.series_id, start, now)
                data[f"window_{field_}"] = int(_increase(pts))
                data["reported_at"] = max(data.get("reported_at", 0.0), latest[0])
    for ref in windows.select(_EVICTIONS):
        latest = windows.latest(ref.series_id, now, lookback)
        data = layer_of(ref.agent_id, ref.labels)
        if latest is not None and data is not None:
            data.setdefault("evictions", {})[ref.labels.get("reason", "")] = int(latest[1])
    for layers in agents.values():
        for data in layers.values():
            hits, misses = data.get("hits", 0), data.get("misses", 0)
            data["hit_ratio"] = hits / (hits + misses) if hits + misses else None
            w_hits, w_misses = data.pop("window_hits", 0), data.pop("window_misses", 0)
            data["window_s"] = window_s
            data["window_hit_ratio"] = w_hits / (w_hits + w_misses) if w_hits + w_misses else None
    return agents


_REQUESTS = "haetae_cache_requests_total"
_HIT_OUTCOMES = frozenset({"hit", "stale", "negative"})


def reported_caches(windows: SeriesWindows, now: float, window_s: float) -> dict[str, Any]:
    """Per agent, cache and layer, from ``haetae_cache_requests_total{cache,layer,outcome}`` (the
    series the CacheHitRatioDrop rule reads): lookups, hits and the hit ratio, in total and over
    the last ``window_s`` seconds. The control plane's own cache is agent ``control-plane``."""
    start = now - window_s
    lookback = max(window_s, windows.window_seconds)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for ref in windows.select(_REQUESTS):
        latest = windows.latest(ref.series_id, now, lookback)
        cache, layer = ref.labels.get("cache", ""), ref.labels.get("layer", "")
        if latest is None or not layer:
            continue
        data = (
            out.setdefault(ref.agent_id, {})
            .setdefault(cache, {})
            .setdefault(layer, {"lookups": 0, "hits": 0, "window_lookups": 0, "window_hits": 0})
        )
        base = windows.latest(ref.series_id, start, lookback)
        pts = ([base] if base is not None else []) + windows.points(ref.series_id, start, now)
        hit = ref.labels.get("outcome") in _HIT_OUTCOMES
        for field_, value in (("lookups", latest[1]), ("window_lookups", _increase(pts))):
            data[field_] += int(value)
            if hit:
                data[field_.replace("lookups", "hits")] += int(value)
    for caches in out.values():
        for layers in caches.values():
            for data in layers.values():
                n, w = data["lookups"], data.pop("window_lookups")
                w_hits = data.pop("window_hits")
                data["hit_ratio"] = data["hits"] / n if n else None
                data["window_s"] = window_s
                data["window_hit_ratio"] = w_hits / w if w else None
    return out


def _unavailable(detail: str) -> ProblemError:
    return ProblemError(
        503,
        "Cache unavailable",
        detail=detail,
        type_="cache-unavailable",
        headers={"Retry-After": "1"},
    )


async def cache_stats(request: web.Request) -> web.Response:
    """This process's cache, every connected L1 (from their heartbeats), totals, under
    ``agents`` each agent-hosted L1 as its reports carried it, and under ``reported`` every
    cache's lookup series in the ingest windows (what the hit-ratio alert reads). ``hot_keys``
    (in ``local`` and each host) lists the ``?hot=N`` (default 10) hottest keys per namespace."""
    service = request.app[CACHE]
    params = read_query(request, StatsQuery)
    local = service.cache.stats.snapshot(hot_keys=params.hot)
    nodes: dict[str, Any] = {}
    if service.bus is not None:
        local["node"] = service.bus.node_id
        try:
            nodes = await service.bus.node_stats()
        except Exception:  # Redis trouble: the local view is still worth answering with
            nodes = {}
        nodes[service.bus.node_id] = local
    totals: dict[str, dict[str, int | float | None]] = {}
    # Totals are this cache's (other named caches, e.g. the link analyzer's, share the bus and
    # are listed under hosts with their own name, but do not add into these totals).
    same_cache = [snap for snap in nodes.values() if snap.get("cache") == local["cache"]]
    for snap in same_cache or [local]:
        for layer, data in snap["layers"].items():
            t = totals.setdefault(layer, {"hits": 0, "misses": 0})
            if layer == "l1":
                t["hits"] = int(t["hits"] or 0) + data["hits"]
                t["misses"] = int(t["misses"] or 0) + data["misses"]
            else:
                t["hits"] = int(t["hits"] or 0) + data["hit"] + data["stale"] + data["negative"]
                t["misses"] = int(t["misses"] or 0) + data["miss"] + data["error"]
    for t in totals.values():
        n = int(t["hits"] or 0) + int(t["misses"] or 0)
        t["hit_ratio"] = (int(t["hits"] or 0) / n) if n else None
    window_s = params.window_s or service.config.stats_window_s
    windows, now = request.app[INGESTOR].windows, time.time()
    agents = agent_cache_stats(windows, now, window_s)
    caches = reported_caches(windows, now, window_s)
    return json_response(
        {"local": local, "hosts": nodes, "totals": totals, "agents": agents, "reported": caches}
    )


async def invalidate(request: web.Request) -> web.Response:
    service = request.app[CACHE]
    body = await read_body(request, InvalidateBody)
    keys, tags = list(body.keys), list(body.tags)
    prefixes = list(body.prefixes) + ([body.prefix] if body.prefix is not None else [])
    if not (keys or tags or prefixes):
        raise invalid("body.keys", "name at least one of keys, tags or prefix")
    layers: list[str] = list(body.layers) if body.layers is not None else sorted(LAYERS)
    timeout = body.timeout_s or service.config.invalidate_timeout_s
    cdn = None
    if "l3" in layers:
        # The CDN knows our tags and keys as surrogate keys (Cache-Tag); a key prefix is no URL.
        cdn = service.cdn
        if cdn is None:
            field = f"body.layers[{layers.index('l3')}]"
            raise invalid(field, "no CDN configured (cdn.provider)")
        if prefixes:
            raise invalid(
                "body.prefix", "layer l3 purges tags and keys; URL prefixes: /admin/cdn/purge"
            )
    data_layers = [layer for layer in layers if layer != "l3"]
    answer: dict[str, Any] = {"keys": keys, "tags": tags, "prefixes": prefixes, "layers": layers}
    status = 200
    if not data_layers:
        answer.update(entry_id=None, complete=True, applied=[], pending=[])
    elif service.bus is None:
        # No Redis: this process's L1 is the only one.
        service.cache.apply_invalidation(keys, tags, prefixes)
        answer.update(entry_id=None, complete=True, applied=["local"], pending=[])
    else:
        try:
            result = await service.bus.invalidate_and_wait(
                keys, tags, prefixes, layers=data_layers, timeout_s=float(timeout)
            )
        except InvalidationError as exc:
            raise _unavailable(str(exc)) from exc
        if result is None:
            answer.update(entry_id=None, complete=True, applied=[], pending=[])
        else:
            answer.update(
                entry_id=result.entry_id,
                complete=result.complete,
                applied=result.applied,
                pending=result.pending,
            )
            # 202: recorded and applied to L2, but some connected L1s had not confirmed in time.
            status = 200 if result.complete else 202
    if cdn is not None:
        # Last: an edge refetching at once must not find the old value in L1 or L2.
        answer["cdn"] = (await purge_cdn(cdn, PurgeRequest(tags=[*tags, *keys]))).view()
    return json_response(answer, status=status)


async def start_warmup(request: web.Request) -> web.Response:
    """Keys (``keys``), a configured set (``set``), or with ``{"source": "hot"|"recent",
    "namespace": ns, "limit": n}`` the ``n`` hottest (this process's and every connected L1's
    lookups) or most recently stored keys of ``ns``. Loaded keys, and the stored ones L2 holds,
    then reach every L1 following the invalidation stream (``l1s`` in the job's view)."""
    service = request.app[CACHE]
    body = await read_body(request, WarmupBody)
    given = body.model_fields_set
    if body.source is not None:
        if given & {"keys", "set"}:
            raise invalid("body.source", "give one of keys, set or source")
        keys, source = await _source_keys(service, body.source, body.namespace, body.limit)
    elif given & {"namespace", "limit"}:
        raise invalid("body.namespace", f"namespace and limit go with a source {SOURCES}")
    elif (body.keys is None) == (body.set is None):
        raise invalid("body.keys", "give either keys or set")
    elif body.set is not None:
        if body.set not in service.config.warmup_sets:
            known = ", ".join(sorted(service.config.warmup_sets)) or "none configured"
            raise invalid("body.set", f"unknown warm-up set (known: {known})")
        keys, source = list(service.config.warmup_sets[body.set]), f"set:{body.set}"
    else:
        assert body.keys is not None
        keys, source = list(body.keys), "keys"
    for i, key in enumerate(keys):
        if not service.warmer.warmable(key):
            raise invalid(
                f"body.keys[{i}]",
                f"no loader for this key's namespace (loaders: {_namespaces(service)})",
            )
    job = service.start_warmup(keys, source)
    return json_response(
        job.view(), status=202, headers={"Location": f"/admin/cache/warmup/{job.id}"}
    )


def _namespaces(service: Any) -> str:
    return ", ".join(service.warmer.namespaces) or "none registered"


async def _source_keys(
    service: Any, source: str, namespace: str | None, limit: int
) -> tuple[list[str], str]:
    if namespace is None:
        raise invalid("body.namespace", "name the namespace to warm")
    warmer = service.warmer
    if namespace not in warmer.namespaces:
        raise invalid(
            "body.namespace", f"no loader for this namespace (loaders: {_namespaces(service)})"
        )
    if source not in warmer.sources(namespace):
        raise invalid("body.source", f"namespace {namespace!r} offers {warmer.sources(namespace)}")
    keys = await warmer.keys_from(source, namespace, limit)
    if not keys:
        raise invalid("body.namespace", f"no {source} keys recorded for this namespace yet")
    return keys, f"{source}:{namespace}"


async def warmup_status(request: web.Request) -> web.Response:
    job = request.app[CACHE].jobs.get(path_text(request, "job_id", 64))
    if job is None:
        raise ProblemError(
            404, "Not Found", detail="no such warm-up job", type_="not-found", field="path.job_id"
        )
    return json_response(job.view())


async def list_warmups(request: web.Request) -> web.Response:
    return json_response({"jobs": [j.view() for j in request.app[CACHE].jobs.values()]})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/admin/cache/stats", cache_stats)
    app.router.add_post("/admin/cache/invalidate", invalidate)
    app.router.add_post("/admin/cache/warmup", start_warmup)
    app.router.add_get("/admin/cache/warmup", list_warmups)
    app.router.add_get("/admin/cache/warmup/{job_id}", warmup_status)
