"""Enrolment: an agent id gets a token, and a running agent's id is never taken over silently.

The fleet's enrolment token proves only that the caller belongs to the fleet, not that it is the
agent already running under an id. So it enrols an id that is new, or whose tokens are all
revoked or expired (nothing runs with it any more). Taking over an id that has a live token (a
second host configured with the same id, a state directory wiped, a restored VM) needs one of:

* the agent's own current token (the running agent rotating its token);
* an admin token with the ``admin`` scope (an admin enrolling by hand);
* an admin's prior approval: ``POST /admin/agents/{id}/takeover`` opens a window in which the
  next fleet-token enrolment of that id takes it over (used once).

Taking over revokes the earlier tokens of the id in the same transaction as the new one is made.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping

import asyncpg

from control_plane.auth.principal import TokenKind
from control_plane.auth.store import TokenStore


class Authority(enum.StrEnum):
    """On whose word an enrolment is made."""

    FLEET = "fleet"  # the enrolment token
    SELF = "self"  # the agent's own current token
    ADMIN = "admin"  # an admin token


class AgentIdTaken(Exception):
    """The id has a live token and nobody with the right to replace it asked."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent id {agent_id!r} is in use by an enrolled agent")
        self.agent_id = agent_id


_CLAIM_NEW = """
INSERT INTO agents (agent_id, hostname, labels) VALUES ($1, $2, $3)
ON CONFLICT (agent_id) DO NOTHING RETURNING 1
"""
# Row-locked: two enrolments of one id are decided one after the other.
_LOCK_EXISTING = """
SELECT takeover_until IS NOT NULL AND takeover_until > now() AS approved
FROM agents WHERE agent_id = $1 FOR UPDATE
"""
_LIVE_TOKENS = """
SELECT count(*) FROM api_tokens
WHERE agent_id = $1 AND kind = 'agent' AND revoked_at IS NULL
  AND (expires_at IS NULL OR expires_at > now())
"""
_UPDATE_AGENT = """
UPDATE agents SET hostname = $2, labels = $3, takeover_until = NULL WHERE agent_id = $1
"""
_APPROVE = """
UPDATE agents SET takeover_until = now() + make_interval(secs => $2)
WHERE agent_id = $1 RETURNING takeover_until
"""


async def enrol_agent(
    conn: asyncpg.Connection,
    tokens: TokenStore,
    agent_id: str,
    *,
    hostname: str,
    labels: Mapping[str, str],
    authority: Authority,
) -> tuple[str, bool]:
    """A new agent token for ``agent_id`` and whether an earlier agent was replaced; raises
    :class:`AgentIdTaken` when the id is live and ``authority`` may not take it over."""
    labels_doc = dict(labels)  # jsonb through the pool's codec
    async with conn.transaction():
        created = await conn.fetchval(_CLAIM_NEW, agent_id, hostname, labels_doc)
        replaced = False
        if created is None:
            approved = await conn.fetchval(_LOCK_EXISTING, agent_id)
            live = await conn.fetchval(_LIVE_TOKENS, agent_id)
            if live and authority is Authority.FLEET and not approved:
                raise AgentIdTaken(agent_id)
            replaced = bool(live)
            await conn.execute(_UPDATE_AGENT, agent_id, hostname, labels_doc)
            await tokens.revoke_agent_tokens(agent_id, conn)
        token, _ = await tokens.create(
            TokenKind.AGENT, f"agent {agent_id}", agent_id=agent_id, conn=conn
        )
    return token, replaced


async def approve_takeover(
    conn: asyncpg.Connection, agent_id: str, within_s: float
) -> dt.datetime | None:
    """Let the next fleet enrolment of ``agent_id`` within ``within_s`` take it over; None if
    no such agent."""
    until: dt.datetime | None = await conn.fetchval(_APPROVE, agent_id, within_s)
    return until
