"""Tokens in PostgreSQL (hashed), with a short in-memory cache of verified tokens."""

from __future__ import annotations

import datetime as dt
import hmac
import time
from collections.abc import Iterable
from pathlib import Path

import asyncpg

from control_plane.auth.principal import (
    NewToken,
    Principal,
    Scope,
    TokenKind,
    generate_token,
    hash_secret,
    secret_matches,
    split_token,
)
from haetae.private_files import write_private_file

# Verified tokens are cached this long: a revocation takes at most this long to bite.
CACHE_TTL_S = 10.0


class TokenStore:
    def __init__(self, pool: asyncpg.Pool, *, preshared_enrolment: str | None = None):
        self._pool = pool
        self._preshared = hash_secret(preshared_enrolment) if preshared_enrolment else None
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def create(
        self,
        kind: TokenKind,
        name: str,
        *,
        scopes: Iterable[Scope] = (),
        agent_id: str | None = None,
        expires_at: dt.datetime | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> tuple[str, Principal]:
        new: NewToken = generate_token()
        scope_list = sorted({Scope(s) for s in scopes}, key=lambda s: s.rank)
        sql = """INSERT INTO api_tokens (token_id, secret_hash, kind, name, scopes, agent_id,
                                         expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"""
        args = (
            new.token_id,
            hash_secret(new.secret),
            kind.value,
            name,
            [s.value for s in scope_list],
            agent_id,
            expires_at,
        )
        if conn is not None:
            await conn.execute(sql, *args)
        else:
            await self._pool.execute(sql, *args)
        principal = Principal(kind, new.token_id, name, frozenset(scope_list), agent_id)
        return new.plaintext, principal

    async def verify(self, plaintext: str) -> Principal | None:
        """The principal for a presented token, or None (unknown, revoked, expired)."""
        if self._preshared is not None and hmac.compare_digest(
            hash_secret(plaintext), self._preshared
        ):
            return Principal(TokenKind.ENROLMENT, "preshared", "preshared enrolment token")
        parts = split_token(plaintext)
        if parts is None:
            return None
        token_id, secret = parts
        now = time.monotonic()
        hit = self._cache.get(plaintext)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await self._pool.fetchrow(
            """SELECT secret_hash, kind, name, scopes, agent_id FROM api_tokens
               WHERE token_id = $1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > now())""",
            token_id,
        )
        principal = None
        if row is not None and secret_matches(secret, row["secret_hash"]):
            principal = Principal(
                TokenKind(row["kind"]),
                token_id,
                row["name"],
                frozenset(Scope(s) for s in row["scopes"]),
                row["agent_id"],
            )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[plaintext] = (now + CACHE_TTL_S, principal)
        return principal

    async def revoke(self, token_id: str) -> bool:
        status = await self._pool.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL",
            token_id,
        )
        self._cache.clear()
        return status.endswith(" 1")

    async def revoke_agent_tokens(self, agent_id: str, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE agent_id = $1 AND revoked_at IS NULL",
            agent_id,
        )
        self._cache.clear()

    async def list(self) -> list[dict[str, object]]:
        rows = await self._pool.fetch(
            """SELECT token_id, kind, name, scopes, agent_id, created_at, expires_at, revoked_at
               FROM api_tokens ORDER BY created_at, token_id"""
        )
        return [dict(r) for r in rows]

    async def ensure_bootstrap_admin(self, token_file: Path) -> str | None:
        """On first start (no admin token at all), create one and write it to ``token_file``
        (mode 600). Returns the plaintext when one was created."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Serialise concurrent first starts of several replicas.
            await conn.execute("SELECT pg_advisory_xact_lock(4803407)")
            exists = await conn.fetchval("SELECT 1 FROM api_tokens WHERE kind = 'admin' LIMIT 1")
            if exists:
                return None
            plaintext, _ = await self.create(
                TokenKind.ADMIN, "bootstrap admin", scopes=[Scope.ADMIN], conn=conn
            )
            write_private_file(token_file, plaintext + "\n")
            return plaintext
