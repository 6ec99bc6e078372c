"""The agents listing: who reports, and whether they are up, stale or down."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg

from control_plane.config import AgentsConfig
from control_plane.query.cursor import encode_cursor


class AgentState(StrEnum):
    UP = "up"
    STALE = "stale"
    DOWN = "down"


def agent_state(last_seen: float | None, now: float, cfg: AgentsConfig) -> AgentState:
    """Up when heard from within ``stale_after_s``, stale until ``down_after_s``, then down.
    An agent that enrolled but never reported is down."""
    if last_seen is None:
        return AgentState.DOWN
    silent = now - last_seen
    if silent < cfg.stale_after_s:
        return AgentState.UP
    if silent < cfg.down_after_s:
        return AgentState.STALE
    return AgentState.DOWN


@dataclass
class AgentsPage:
    agents: list[dict[str, Any]]
    next_cursor: str | None


async def list_agents(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    now: float,
    cfg: AgentsConfig,
    limit: int,
    after: str | None,
) -> AgentsPage:
    rows = await conn.fetch(
        """SELECT agent_id, hostname, labels, enrolled_at, last_seen_at, last_seq FROM agents
           WHERE $1::text IS NULL OR agent_id > $1 ORDER BY agent_id LIMIT $2""",
        after,
        limit + 1,
    )
    has_more = len(rows) > limit
    agents = [_agent(r, now, cfg) for r in rows[:limit]]
    next_cursor = encode_cursor(agents[-1]["agent_id"]) if has_more else None
    return AgentsPage(agents, next_cursor)


def _agent(row: asyncpg.Record, now: float, cfg: AgentsConfig) -> dict[str, Any]:
    seen: dt.datetime | None = row["last_seen_at"]
    seen_ts = seen.timestamp() if seen is not None else None
    return {
        "agent_id": row["agent_id"],
        "hostname": row["hostname"],
        "labels": row["labels"],
        "enrolled_at": row["enrolled_at"].isoformat(),
        "last_seen_at": seen.isoformat() if seen is not None else None,
        "seconds_since_seen": None if seen_ts is None else max(0.0, round(now - seen_ts, 3)),
        "last_seq": row["last_seq"],
        "state": agent_state(seen_ts, now, cfg).value,
    }
