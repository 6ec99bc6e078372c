"""Signed, expiring links to incident pages (put in notifications): HMAC-SHA256 over the
incident and the expiry, with a key shared by every control plane through PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import urlencode

import asyncpg

LIST = "list"  # the subject of a link to the incident list
_EXP = re.compile(r"[0-9]{1,19}")


async def load_link_key(pool: asyncpg.Pool) -> bytes:
    """The signing key; created by the first control plane to start."""
    await pool.execute(
        "INSERT INTO alerting_secrets (name, secret) VALUES ('incident_links', $1)"
        " ON CONFLICT (name) DO NOTHING",
        secrets.token_bytes(32),
    )
    key = await pool.fetchval("SELECT secret FROM alerting_secrets WHERE name = 'incident_links'")
    assert isinstance(key, bytes)
    return key


class LinkSigner:
    def __init__(self, key: bytes, *, base_url: str, ttl_s: float) -> None:
        self._key = key
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s

    def _mac(self, subject: str, exp: int) -> str:
        msg = f"incident-page:{subject}:{exp}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def query(self, subject: int | str, now: float) -> dict[str, str]:
        exp = int(now + self.ttl_s)
        return {"exp": str(exp), "sig": self._mac(str(subject), exp)}

    def url(self, incident_id: int, now: float) -> str:
        return f"{self.base_url}/incidents/{incident_id}?{urlencode(self.query(incident_id, now))}"

    def list_url(self, now: float) -> str:
        return f"{self.base_url}/incidents?{urlencode(self.query(LIST, now))}"

    def verify(
        self, subject: int | str, exp: str | int | None, sig: str | None, now: float
    ) -> bool:
        """A link's ``exp`` and ``sig`` hold for ``subject`` and have not expired (``exp`` is
        ASCII digits, at most 19 of them: "²" and a 5,000-digit number are simply invalid)."""
        if isinstance(exp, str):
            exp = int(exp) if _EXP.fullmatch(exp) else None
        if exp is None or not sig or exp < now:
            return False
        return hmac.compare_digest(self._mac(str(subject), exp), sig)
