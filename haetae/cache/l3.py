"""The L3: the CDN in front of our HTTP services. Purge backends, one interface:

- :class:`CloudflarePurger` speaks Cloudflare's purge API (by URL, cache tag, prefix, everything);
- :class:`NginxPurger` purges a local nginx ``proxy_cache`` by removing its cache files, which
  Debian's stock nginx supports without the third-party ``proxy_cache_purge`` module.

Errors are grouped by what the caller does next: :class:`PurgeRetryable` (429/5xx/transport,
with the server's Retry-After) or :class:`PurgeRejected` (the request or the credentials are
wrong: retrying will not help).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

CLOUDFLARE_API = "https://api.cloudflare.com"
# Cloudflare accepts at most 30 files (and 30 tags or prefixes on most plans) per purge call.
CLOUDFLARE_BATCH = 30


class PurgeError(Exception):
    """A purge failed. ``provider`` is the backend; ``errors`` the remote's own messages."""

    retryable = False

    def __init__(
        self, message: str, *, provider: str, status: int | None = None, errors: Any = ()
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.errors: list[dict[str, Any]] = list(errors)


class PurgeRetryable(PurgeError):
    """Rate-limited, a server fault or a transport failure: try again after ``retry_after_s``."""

    retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class PurgeRejected(PurgeError):
    """The CDN refused the request (bad input, token or zone): a retry will fail the same way."""


@dataclass(frozen=True)
class PurgeRequest:
    """What to purge: full URLs, surrogate keys (cache tags), URL prefixes (``host/path``,
    no scheme, as Cloudflare takes them), or everything."""

    urls: Sequence[str] = ()
    tags: Sequence[str] = ()
    prefixes: Sequence[str] = ()
    everything: bool = False

    def __bool__(self) -> bool:
        return bool(self.everything or self.urls or self.tags or self.prefixes)


@dataclass
class PurgeResult:
    provider: str
    calls: int = 0
    # Backend-specific: Cloudflare's purge ids, or the nginx cache files removed.
    ids: list[str] = field(default_factory=list)
    removed: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "calls": self.calls,
            "ids": self.ids,
            "removed": self.removed,
        }


class CdnPurger(Protocol):
    name: str

    async def purge(self, request: PurgeRequest) -> PurgeResult: ...

    async def aclose(self) -> None: ...


def batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from Cloudflare, and the caller has its own backoff


class CloudflarePurger:
    """``POST {base_url}/client/v4/zones/{zone_id}/purge_cache`` with a Bearer API token.

    Long URL, tag and prefix lists are split into calls of ``batch_size``. A 429 or 5xx is
    retried up to ``max_retries`` times, waiting the server's Retry-After (capped by
    ``max_retry_wait_s``); then it raises :class:`PurgeRetryable` carrying that Retry-After.
    """

    name = "cloudflare"

    def __init__(
        self,
        zone_id: str,
        api_token: str,
        *,
        base_url: str = CLOUDFLARE_API,
        timeout_s: float = 10.0,
        max_retries: int = 2,
        max_retry_wait_s: float = 5.0,
        batch_size: int = CLOUDFLARE_BATCH,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/client/v4/zones/{zone_id}/purge_cache"
        self._headers = {"Authorization": f"Bearer {api_token}"}
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._owns_client = client is None
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self.batch_size = batch_size

    async def purge(self, request: PurgeRequest) -> PurgeResult:
        result = PurgeResult(self.name)
        bodies: list[dict[str, Any]] = []
        if request.everything:
            bodies.append({"purge_everything": True})
        else:
            for name, items in (
                ("files", request.urls),
                ("tags", request.tags),
                ("prefixes", request.prefixes),
            ):
                bodies += [{name: chunk} for chunk in batches(items, self.batch_size)]
        for body in bodies:
            purge_id = await self._call(body)
            result.calls += 1
            if purge_id:
                result.ids.append(purge_id)
        return result

    async def _call(self, body: dict[str, Any]) -> str | None:
        attempt = 0
        while True:
            try:
                return await self._once(body)
            except PurgeRetryable as exc:
                wait = exc.retry_after_s if exc.retry_after_s is not None else 0.5 * 2**attempt
                if attempt >= self.max_retries or wait > self.max_retry_wait_s:
                    raise
                attempt += 1
                await asyncio.sleep(wait)

    async def _once(self, body: dict[str, Any]) -> str | None:
        try:
            resp = await self._client.post(self._url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise PurgeRetryable(
                f"cloudflare purge: {type(exc).__name__}: {exc}", provider=self.name
            ) from exc
        try:
            data = resp.json()
        except ValueError:
            data = {}
        envelope = data if isinstance(data, dict) else {}
        errors = [e for e in envelope.get("errors") or [] if isinstance(e, dict)]
        if resp.status_code < 300 and envelope.get("success") is True:
            purge_id = (envelope.get("result") or {}).get("id")
            return str(purge_id) if purge_id else None
        detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        message = f"cloudflare purge: HTTP {resp.status_code}" + (f": {detail}" if detail else "")
        if resp.status_code == 429 or resp.status_code >= 500:
            raise PurgeRetryable(
                message,
                provider=self.name,
                status=resp.status_code,
                errors=errors,
                retry_after_s=_retry_after(resp.headers.get("Retry-After")),
            )
        raise PurgeRejected(message, provider=self.name, status=resp.status_code, errors=errors)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class NginxPurger:
    """Purges a local nginx ``proxy_cache`` by deleting its cache files.

    nginx names a cache file by the md5 of its ``proxy_cache_key`` under ``levels`` directories;
    a missing file is a MISS on the next request. URLs map to keys through ``key_format``
    (placeholders ``scheme``, ``host`` (with port), ``uri`` (path and query)), which must match
    the edge's ``proxy_cache_key`` (``$scheme://$http_host$request_uri`` for the default).
    Tags, prefixes and everything walk the cache: each file holds its key and the upstream's
    response headers, so the ``Surrogate-Key`` header names its tags.
    """

    name = "nginx"

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        levels: str = "1:2",
        key_format: str = "{scheme}://{host}{uri}",
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.levels = [int(n) for n in levels.split(":")] if levels else []
        self.key_format = key_format

    def key_of(self, url: str) -> str:
        parts = urlsplit(url)
        uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return self.key_format.format(scheme=parts.scheme, host=parts.netloc, uri=uri)

    def path_of(self, key: str) -> Path:
        digest = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()  # nginx naming
        path, end = self.cache_dir, len(digest)
        for width in self.levels:
            path /= digest[end - width : end]
            end -= width
        return path / digest

    async def purge(self, request: PurgeRequest) -> PurgeResult:
        return await asyncio.to_thread(self._purge, request)

    def _purge(self, request: PurgeRequest) -> PurgeResult:
        result = PurgeResult(self.name, calls=1)
        for url in request.urls:
            if _unlink(self.path_of(self.key_of(url))):
                result.removed += 1
        if not (request.everything or request.tags or request.prefixes):
            return result
        tags, prefixes = set(request.tags), tuple(request.prefixes)
        for path in self.cache_dir.rglob("*"):
            if not path.is_file() or path.name.startswith("."):
                continue
            if request.everything or self._matches(path, tags, prefixes):
                result.removed += _unlink(path)
        return result

    async def aclose(self) -> None:
        pass  # nothing held open: every purge works on the files alone

    @staticmethod
    def _matches(path: Path, tags: set[str], prefixes: tuple[str, ...]) -> bool:
        try:
            with path.open("rb") as f:
                head = f.read(16384)
        except OSError:
            return False
        key, headers = _parse_cache_file(head)
        if key is None:
            return False
        bare = key.split("://", 1)[-1]
        if prefixes and bare.startswith(prefixes):
            return True
        return bool(tags and tags.intersection(headers.get("surrogate-key", "").split()))


def _parse_cache_file(head: bytes) -> tuple[str | None, dict[str, str]]:
    """The key and response headers of an nginx cache file (binary header, ``\\nKEY: ...\\n``,
    then the upstream's status line and headers)."""
    start = head.find(b"\nKEY: ")
    if start < 0:
        return None, {}
    end = head.find(b"\n", start + 6)
    key = head[start + 6 : end].decode("latin-1")
    block_end = head.find(b"\r\n\r\n", end)
    headers: dict[str, str] = {}
    for line in head[end + 1 : block_end if block_end >= 0 else None].split(b"\r\n")[1:]:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return key, headers


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1
