"""Who is calling: pure values, no I/O."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

TOKEN_PREFIX = "hta_"


class TokenKind(StrEnum):
    ADMIN = "admin"
    ENROLMENT = "enrolment"
    AGENT = "agent"


class Scope(StrEnum):
    """Admin scopes, each implying the ones before it: read < write < admin."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    kind: TokenKind
    token_id: str
    name: str
    scopes: frozenset[Scope] = frozenset()
    agent_id: str | None = None

    def has_scope(self, needed: Scope) -> bool:
        return self.kind is TokenKind.ADMIN and any(s.rank >= needed.rank for s in self.scopes)


@dataclass(frozen=True)
class NewToken:
    token_id: str
    secret: str

    @property
    def plaintext(self) -> str:
        return f"{TOKEN_PREFIX}{self.token_id}_{self.secret}"


def generate_token() -> NewToken:
    return NewToken(secrets.token_hex(8), secrets.token_urlsafe(32))


def split_token(plaintext: str) -> tuple[str, str] | None:
    """``hta_<id>_<secret>`` -> (id, secret); None when it is not one of ours."""
    if not plaintext.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = plaintext[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(token_id) != 16 or not secret:
        return None
    return token_id, secret


def hash_secret(secret: str) -> bytes:
    # Tokens carry 256 random bits, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
