"""Answering ``query`` and ``query_range``: parse, load the points the selectors need (the
windows when they hold the span, else PostgreSQL), then evaluate off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from control_plane.config import PromApiConfig
from control_plane.ingest.windows import SeriesWindows
from control_plane.promapi.errors import ErrorType, PromApiError, bad_data
from control_plane.promapi.loader import Bounds, load_stored, load_windows
from control_plane.promapi.params import RangeQuery
from control_plane.promapi.results import instant_data, range_data
from control_plane.promapi.snapshot import Snapshot, selector_needs
from control_plane.rules.ast import Expr
from control_plane.rules.errors import ExprError
from control_plane.rules.parser import parse_query


def parse(text: str) -> Expr:
    """The expression (any type: an instant query may answer a range vector or a string),
    or ``bad_data``."""
    try:
        return parse_query(text)
    except ExprError as exc:
        message = f"{exc.detail} (at position {exc.position})"
        raise bad_data(f'invalid parameter "query": {message}') from None
    except RecursionError:
        raise bad_data('invalid parameter "query": the expression is nested too deeply') from None


class QueryEngine:
    def __init__(
        self,
        pool: asyncpg.Pool,
        windows: SeriesWindows | None,
        cfg: PromApiConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pool = pool
        self._windows = windows
        self._cfg = cfg
        self._clock = clock
        # The windows hold every sample committed since this process started (and less
        # before it): only spans after this are read from them.
        self._windows_from = clock()
        self.bounds = Bounds(cfg.max_series, cfg.max_samples)

    async def instant(
        self, text: str, at: float, *, timeout_s: float | None, lookback_s: float | None, limit: int
    ) -> dict[str, Any]:
        expr = parse(text)
        lookback = lookback_s or self._cfg.lookback_delta_s
        async with self._deadline(timeout_s):
            snapshot = await self._snapshot(expr, at, at, lookback)
            return await asyncio.to_thread(instant_data, expr, snapshot, at, lookback, limit)

    async def range(self, q: RangeQuery) -> dict[str, Any]:
        expr = parse(q.query)
        lookback = q.lookback_s or self._cfg.lookback_delta_s
        async with self._deadline(q.timeout_s) as deadline:
            snapshot = await self._snapshot(expr, q.start, q.end, lookback)
            return await asyncio.to_thread(
                range_data,
                expr,
                snapshot,
                q.instants(),
                lookback,
                deadline=deadline,
                limit=q.limit,
            )

    async def _snapshot(self, expr: Expr, start: float, end: float, lookback: float) -> Snapshot:
        needs = selector_needs(expr, lookback)
        if not needs:
            return Snapshot()
        earliest = min(n.span(start, end)[0] for n in needs)
        if self._in_windows(earliest):
            assert self._windows is not None
            return load_windows(self._windows, needs, start, end, self.bounds)
        return await load_stored(self._pool, needs, start, end, self.bounds)

    def _in_windows(self, earliest: float) -> bool:
        if not self._cfg.use_windows or self._windows is None:
            return False
        now = self._clock()
        return earliest >= max(now - self._windows.window_seconds, self._windows_from)

    def _deadline(self, timeout_s: float | None) -> _Deadline:
        limit = self._cfg.timeout_s if timeout_s is None else min(timeout_s, self._cfg.timeout_s)
        return _Deadline(limit)


class _Deadline:
    """``async with``: the monotonic deadline for the thread's own checks, and a timeout
    over the whole (the database load included) answered as Prometheus's ``timeout``."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._cm = asyncio.timeout(timeout_s)

    async def __aenter__(self) -> float:
        await self._cm.__aenter__()
        return time.monotonic() + self._timeout_s

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._cm.__aexit__(*exc)
        except TimeoutError:
            raise PromApiError(ErrorType.TIMEOUT, "query timed out in query execution") from None
