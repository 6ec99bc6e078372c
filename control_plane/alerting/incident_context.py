"""Context gathered for an incident right after it opens: the hook other parts plug into.

A :class:`ContextSource` has a name and one ``gather()``; the notifier runs every source for
each incident still without context (claimed with ``FOR UPDATE SKIP LOCKED``) and stores the
results by source name in ``incidents.context``. A failing source records its error and never
blocks the others. :class:`RecentSeries` (the alert's recent samples) is built in; error logs,
slow queries and traces register their own sources as they arrive. :class:`RuleExpressions`
keeps each alert's expression for the incident page.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg


@dataclass(frozen=True)
class IncidentSeed:
    incident_id: int
    title: str
    created_at: float
    # The labels of the incident's alerts (empty for incidents opened by hand).
    alerts: Sequence[Mapping[str, str]]


class ContextSource(Protocol):
    name: str

    async def gather(self, conn: asyncpg.Connection, seed: IncidentSeed) -> Any:
        """JSON-serialisable context for the incident."""
        ...


class RecentSeries:
    """The recent samples of the series each alert's rule reads, for the alert's agent."""

    name = "recent_series"

    def __init__(
        self,
        metric_names: Callable[[str], frozenset[str]],
        *,
        window_s: float = 3600.0,
        max_series: int = 20,
        max_points: int = 240,
    ) -> None:
        self._metric_names = metric_names  # rule name -> metric names its expression reads
        self._window_s = window_s
        self._max_series = max_series
        self._max_points = max_points

    async def gather(self, conn: asyncpg.Connection, seed: IncidentSeed) -> Any:
        since = dt.datetime.fromtimestamp(seed.created_at - self._window_s, dt.UTC)
        out: list[dict[str, Any]] = []
        seen: set[tuple[str, frozenset[str]]] = set()
        for labels in seed.alerts:
            names = sorted(self._metric_names(labels.get("alertname", "")))
            agent = labels.get("agent")
            key = (agent or "", frozenset(names))
            if not names or key in seen:
                continue
            seen.add(key)
            rows = await conn.fetch(
                """SELECT s.series_id, s.agent_id, s.name, s.labels FROM series s
                   WHERE s.name = ANY($1::text[]) AND ($2::text IS NULL OR s.agent_id = $2)
                   ORDER BY s.series_id LIMIT $3""",
                names,
                agent,
                self._max_series - len(out),
            )
            for r in rows:
                points = await conn.fetch(
                    """SELECT ts, value FROM samples WHERE series_id = $1 AND ts > $2
                       ORDER BY ts DESC LIMIT $3""",
                    r["series_id"],
                    since,
                    self._max_points,
                )
                out.append(
                    {
                        "name": r["name"],
                        "agent": r["agent_id"],
                        "labels": r["labels"],
                        "points": [[p["ts"].timestamp(), p["value"]] for p in reversed(points)],
                    }
                )
            if len(out) >= self._max_series:
                break
        return out


class RuleExpressions:
    """Each alert's rule expression as it was when the incident opened (rules change later)."""

    name = "rule_expressions"

    def __init__(self, expression: Callable[[str], str | None]) -> None:
        self._expression = expression  # rule name -> its expression text

    async def gather(self, conn: asyncpg.Connection, seed: IncidentSeed) -> Any:
        out: dict[str, str] = {}
        for labels in seed.alerts:
            name = labels.get("alertname", "")
            expr = self._expression(name) if name else None
            if expr is not None:
                out[name] = expr
        return out


async def gather_pending(
    pool: asyncpg.Pool,
    sources: Sequence[ContextSource],
    *,
    limit: int = 20,
    log: logging.Logger | None = None,
) -> int:
    """Gather context for incidents that have none yet; returns how many were done."""
    if not sources:
        return 0
    log = log or logging.getLogger("control_plane.alerting")
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT incident_id, title, created_at, group_key FROM incidents
               WHERE context IS NULL ORDER BY incident_id LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit,
        )
        for r in rows:
            found = await conn.fetch(
                "SELECT labels FROM incident_alerts WHERE incident_id = $1 ORDER BY starts_at",
                r["incident_id"],
            )
            if not found and r["group_key"] is not None:
                found = await conn.fetch(
                    "SELECT labels FROM notify_group_alerts WHERE group_key = $1",
                    r["group_key"],
                )
            alerts = [a["labels"] for a in found]
            seed = IncidentSeed(r["incident_id"], r["title"], r["created_at"].timestamp(), alerts)
            context: dict[str, Any] = {}
            for source in sources:
                try:
                    async with conn.transaction():  # a savepoint: a failing source is contained
                        context[source.name] = await source.gather(conn, seed)
                except Exception as exc:
                    log.warning("incident context %s failed: %s", source.name, exc)
                    context[source.name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            await conn.execute(
                "UPDATE incidents SET context = $2 WHERE incident_id = $1",
                r["incident_id"],
                context,
            )
        return len(rows)
