"""PostgreSQL persistence for rules made through the API, alert states and their history.

Every change of one evaluation pass (states written, states removed, transitions recorded) is
one transaction: after a crash the stored states and the history agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from control_plane.rules.model import Rule, RuleSource, rule_from_mapping
from control_plane.rules.state import Alert, AlertState, Transition

_UPSERT_STATE = """
INSERT INTO alert_states (shard, rule_name, fingerprint, labels, state, value, active_at,
                          last_active_at, fired_at, resolved_at, flapping, flips, annotations,
                          updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now())
ON CONFLICT (shard, rule_name, fingerprint) DO UPDATE SET
    labels = EXCLUDED.labels, state = EXCLUDED.state, value = EXCLUDED.value,
    active_at = EXCLUDED.active_at, last_active_at = EXCLUDED.last_active_at,
    fired_at = EXCLUDED.fired_at, resolved_at = EXCLUDED.resolved_at,
    flapping = EXCLUDED.flapping, flips = EXCLUDED.flips, annotations = EXCLUDED.annotations,
    updated_at = now()
"""
_INSERT_EVENT = """
INSERT INTO alert_events (at, rule_name, fingerprint, labels, previous, state, flapping, value,
                          annotations)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


def _ts(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC)


def _epoch(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass(frozen=True)
class StoredRule:
    rule: Rule
    updated_at: dt.datetime


class AlertStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- rules ---------------------------------------------------------------------------

    async def api_rules(self) -> list[StoredRule]:
        rows = await self._pool.fetch("SELECT spec, updated_at FROM alert_rules ORDER BY name")
        return [StoredRule(rule_from_mapping(r["spec"]), r["updated_at"]) for r in rows]

    async def get_rule(self, name: str) -> Rule | None:
        spec = await self._pool.fetchval("SELECT spec FROM alert_rules WHERE name = $1", name)
        return None if spec is None else rule_from_mapping(spec)

    async def rules_version(self) -> tuple[Any, ...]:
        """Changes whenever a rule is created, updated or deleted (by any process)."""
        row = await self._pool.fetchrow(
            "SELECT count(*) AS n, max(updated_at) AS latest FROM alert_rules"
        )
        assert row is not None
        return (row["n"], row["latest"])

    async def put_rule(self, rule: Rule) -> bool:
        """Create or replace an API rule; True when it was created."""
        assert rule.source is RuleSource.API
        created = await self._pool.fetchval(
            """INSERT INTO alert_rules (name, spec) VALUES ($1, $2)
               ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, updated_at = now()
               RETURNING (xmax = 0)""",
            rule.name,
            rule.spec(),
        )
        return bool(created)

    async def delete_rule(self, name: str, now: float) -> bool:
        """Delete an API rule, and its alerts (recorded in the history as gone inactive)."""
        async with self._pool.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval(
                "DELETE FROM alert_rules WHERE name = $1 RETURNING name", name
            )
            if deleted is None:
                return False
            rows = await conn.fetch(
                "DELETE FROM alert_states WHERE rule_name = $1 RETURNING *", name
            )
            await conn.executemany(
                _INSERT_EVENT,
                [
                    (
                        _ts(now),
                        name,
                        r["fingerprint"],
                        r["labels"],
                        r["state"],
                        AlertState.INACTIVE.value,
                        False,
                        r["value"],
                        r["annotations"],
                    )
                    for r in rows
                ],
            )
            return True

    # -- alert states --------------------------------------------------------------------

    async def load_alerts(self, shard: int) -> dict[str, dict[str, Alert]]:
        """rule name -> fingerprint -> alert, for one shard."""
        rows = await self._pool.fetch("SELECT * FROM alert_states WHERE shard = $1", shard)
        out: dict[str, dict[str, Alert]] = {}
        for r in rows:
            alert = Alert(
                rule=r["rule_name"],
                fingerprint=r["fingerprint"],
                labels=r["labels"],
                state=AlertState(r["state"]),
                value=r["value"],
                active_at=r["active_at"].timestamp(),
                last_active_at=r["last_active_at"].timestamp(),
                fired_at=_epoch(r["fired_at"]),
                resolved_at=_epoch(r["resolved_at"]),
                flapping=r["flapping"],
                flips=tuple(r["flips"]),
                annotations=r["annotations"],
            )
            out.setdefault(alert.rule, {})[alert.fingerprint] = alert
        return out

    async def save(
        self,
        shard: int,
        changed: Sequence[Alert],
        removed: Sequence[tuple[str, str]],
        transitions: Sequence[Transition],
    ) -> None:
        """One pass's changes in one transaction. ``removed`` holds (rule, fingerprint)."""
        if not (changed or removed or transitions):
            return
        async with self._pool.acquire() as conn, conn.transaction():
            if changed:
                await conn.executemany(_UPSERT_STATE, [_state_row(shard, a) for a in changed])
            if removed:
                await conn.execute(
                    """DELETE FROM alert_states s
                       USING unnest($2::text[], $3::text[]) AS d(rule_name, fingerprint)
                       WHERE s.shard = $1 AND s.rule_name = d.rule_name
                         AND s.fingerprint = d.fingerprint""",
                    shard,
                    [r for r, _ in removed],
                    [f for _, f in removed],
                )
            if transitions:
                await conn.executemany(_INSERT_EVENT, [_event_row(t) for t in transitions])

    async def drop_rules_except(self, shard: int, names: Sequence[str], now: float) -> int:
        """Forget the alerts of rules that no longer exist (recorded as gone inactive)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """DELETE FROM alert_states
                   WHERE shard = $1 AND NOT (rule_name = ANY($2::text[])) RETURNING *""",
                shard,
                list(names),
            )
            await conn.executemany(
                _INSERT_EVENT,
                [
                    (
                        _ts(now),
                        r["rule_name"],
                        r["fingerprint"],
                        r["labels"],
                        r["state"],
                        AlertState.INACTIVE.value,
                        False,
                        r["value"],
                        r["annotations"],
                    )
                    for r in rows
                ],
            )
            return len(rows)


def _state_row(shard: int, a: Alert) -> tuple[Any, ...]:
    return (
        shard,
        a.rule,
        a.fingerprint,
        dict(a.labels),
        a.state.value,
        a.value,
        _ts(a.active_at),
        _ts(a.last_active_at),
        _ts(a.fired_at),
        _ts(a.resolved_at),
        a.flapping,
        list(a.flips),
        dict(a.annotations),
    )


def _event_row(t: Transition) -> tuple[Any, ...]:
    a = t.alert
    return (
        _ts(t.at),
        a.rule,
        a.fingerprint,
        dict(a.labels),
        t.previous.value,
        a.state.value,
        a.flapping,
        a.value,
        dict(a.annotations),
    )
