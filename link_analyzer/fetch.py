"""Guarded, bounded fetching: one pooled httpx client for the whole process.

Every connection goes through the SSRF guard (``ssrf.py``); redirects are followed here, hop by
hop, so each target is re-checked (at connect time) and counted; bodies are streamed and cut at a
byte cap (HTML stops after ``</head>``: metadata lives there); each fetch has a total deadline;
each host gets a bounded number of concurrent requests; a short ``429 Retry-After`` is waited
out once. Proxy environment variables are ignored (``trust_env=False``): a proxy would connect
on our behalf, past the guard.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from link_analyzer.errors import (
    FetchError,
    FetchRefused,
    FetchTimeout,
    TooManyRedirects,
    UpstreamStatus,
)
from link_analyzer.hostslots import HostSlots
from link_analyzer.ssrf import AddressPolicy, GuardedNetworkBackend
from link_analyzer.urls import UrlRefused, normalize

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEAD_END = b"</head"


@dataclass(frozen=True)
class FetchLimits:
    total_timeout_s: float = 10.0
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 5.0
    html_max_bytes: int = 512 * 1024
    media_max_bytes: int = 8 * 1024 * 1024
    max_redirects: int = 5
    per_host_concurrency: int = 4
    # Request starts per second per host (None: only the concurrency bound applies).
    per_host_rate_per_s: float | None = 10.0
    max_connections: int = 200
    max_keepalive: int = 50
    # httpcore's pool rescans every connection and waiting request on each request state
    # change (quadratic in what is in flight); origins are spread over this many independent
    # pools, so each scan covers a handful (1: one pool, as before).
    pool_shards: int = 32
    # A 429 asking for a longer pause than this is reported, not waited out.
    retry_after_max_s: float = 3.0
    user_agent: str = "HaetaeLinkAnalyzer/0.1 (+https://haetae.dev/bot)"


@dataclass(frozen=True)
class FetchResult:
    url: str
    final_url: str
    status: int
    content_type: str
    body: bytes
    # True when the body was cut at the byte cap (not when HTML stopped after </head>).
    truncated: bool
    redirects: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def charset(self) -> str:
        for part in self.content_type.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                return value.strip("\"' ")
        return "utf-8"

    def text(self) -> str:
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pools built on the guarded network backend."""

    def __init__(
        self,
        policy: AddressPolicy,
        limits: FetchLimits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(trust_env=False)
        ctx = ssl_context or httpx.create_ssl_context(trust_env=False)
        backend = GuardedNetworkBackend(policy)
        shards = max(1, limits.pool_shards)
        keepalive = -(-limits.max_keepalive // shards)

        def pool() -> httpcore.AsyncConnectionPool:
            return httpcore.AsyncConnectionPool(
                ssl_context=ctx,
                # Each shard may use the whole budget (a busy origin is not starved by its
                # shard); the fetcher bounds requests in flight across shards to
                # max_connections, and idle keep-alive connections are split between shards.
                max_connections=limits.max_connections,
                max_keepalive_connections=keepalive,
                keepalive_expiry=30.0,
                # HTTP/2 when the origin offers it by ALPN (TLS only). Every connection, h1 or
                # h2, is opened by the guarded backend; an h2 connection only multiplexes
                # requests to the one origin (scheme, host, port) it was opened and checked for.
                http1=True,
                http2=True,
                network_backend=backend,
            )

        self._pool = _ShardedPool([pool() for _ in range(shards)])  # type: ignore[assignment]


class _ShardedPool:
    """Independent connection pools, each origin (scheme, host, port) always in the same one.

    A connection only ever serves its own origin, so splitting by origin changes nothing about
    which connection a request may use; it only keeps each pool's bookkeeping small. Every
    shard connects through the same guarded backend (the SSRF check at connect time)."""

    def __init__(self, pools: list[httpcore.AsyncConnectionPool]) -> None:
        self.pools = pools

    def _pool_for(self, request: httpcore.Request) -> httpcore.AsyncConnectionPool:
        if len(self.pools) == 1:
            return self.pools[0]
        url = request.url
        return self.pools[hash((url.scheme, url.host, url.port)) % len(self.pools)]

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        return await self._pool_for(request).handle_async_request(request)

    @property
    def connections(self) -> list[httpcore.AsyncConnectionInterface]:
        return [c for p in self.pools for c in p.connections]

    async def aclose(self) -> None:
        for p in self.pools:
            await p.aclose()

    async def __aenter__(self) -> _ShardedPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Fetcher:
    """``async with Fetcher(limits, policy) as f: await f.fetch_html(url)``."""

    def __init__(
        self,
        limits: FetchLimits | None = None,
        policy: AddressPolicy | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ):
        """``ssl_context``: the trust store (tests pass one trusting their local CA)."""
        self.limits = limits or FetchLimits()
        self.policy = policy or AddressPolicy()
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(self.policy, self.limits, ssl_context),
            timeout=httpx.Timeout(
                self.limits.read_timeout_s, connect=self.limits.connect_timeout_s
            ),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": self.limits.user_agent, "Accept-Language": "ko,en;q=0.8"},
        )
        self._host_slots = HostSlots(
            self.limits.per_host_concurrency, self.limits.per_host_rate_per_s
        )
        # Requests in flight across all pool shards (one pool used to bound this itself).
        self._in_flight = asyncio.Semaphore(self.limits.max_connections)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch_html(self, url: str, *, whole: bool = False) -> FetchResult:
        """``whole``: read the body too (up to the cap), for pages whose content is in it."""
        return await self._fetch(url, self.limits.html_max_bytes, stop_at_head_end=not whole)

    async def fetch_json(self, url: str, max_bytes: int = 64 * 1024) -> FetchResult:
        return await self._fetch(url, max_bytes, stop_at_head_end=False)

    async def fetch_media(self, url: str) -> FetchResult:
        return await self._fetch(url, self.limits.media_max_bytes, stop_at_head_end=False)

    async def fetch_many(
        self, urls: Sequence[str], *, media: bool = True
    ) -> list[FetchResult | FetchError]:
        """Fetch in parallel (bounded per host); failures are returned in place, not raised."""
        one = self.fetch_media if media else self.fetch_html

        async def guarded(u: str) -> FetchResult | FetchError:
            try:
                return await one(u)
            except FetchError as exc:
                return exc

        return list(await asyncio.gather(*(guarded(u) for u in urls)))

    async def resolve_redirect(self, url: str) -> str:
        """One guarded hop for short links (vm.tiktok.com, naver.me, t.co): the Location the
        origin points at, or ``url`` itself when it does not redirect."""
        try:
            async with asyncio.timeout(self.limits.total_timeout_s):
                async with self._request(url) as resp:
                    location = resp.headers.get("location")
                    if resp.status_code in _REDIRECTS and location:
                        return self._next_hop(url, location)
                    if resp.status_code >= 400:
                        raise UpstreamStatus(url, resp.status_code)
                    return url
        except TimeoutError:
            raise FetchTimeout(url, "resolving the short link timed out") from None

    async def _fetch(self, url: str, cap: int, *, stop_at_head_end: bool) -> FetchResult:
        start = time.monotonic()
        try:
            async with asyncio.timeout(self.limits.total_timeout_s):
                return await self._follow(url, cap, stop_at_head_end, start)
        except TimeoutError:
            raise FetchTimeout(
                url, f"no complete answer within {self.limits.total_timeout_s:g} s"
            ) from None

    async def _follow(
        self, url: str, cap: int, stop_at_head_end: bool, start: float
    ) -> FetchResult:
        current = url
        hops: list[str] = []
        waited_429 = False
        while True:
            async with self._request(current) as resp:
                location = resp.headers.get("location")
                if resp.status_code in _REDIRECTS and location:
                    if len(hops) >= self.limits.max_redirects:
                        raise TooManyRedirects(
                            url, f"more than {self.limits.max_redirects} redirects"
                        )
                    current = self._next_hop(current, location)
                    hops.append(current)
                    continue
                if resp.status_code == 429:
                    delay = parse_retry_after(resp.headers.get("retry-after"))
                    short = delay is not None and delay <= self.limits.retry_after_max_s
                    if short and not waited_429:
                        assert delay is not None
                        waited_429 = True
                        await asyncio.sleep(delay)
                        continue
                    raise UpstreamStatus(current, 429, delay)
                if resp.status_code >= 400:
                    raise UpstreamStatus(current, resp.status_code)
                body, truncated = await read_capped(resp.aiter_bytes(), cap, stop_at_head_end)
                return FetchResult(
                    url=url,
                    final_url=current,
                    status=resp.status_code,
                    content_type=resp.headers.get("content-type", ""),
                    body=body,
                    truncated=truncated,
                    redirects=tuple(hops),
                    elapsed_s=time.monotonic() - start,
                    headers={
                        k: v
                        for k, v in resp.headers.items()
                        if k in ("content-length", "etag", "last-modified", "cache-control")
                    },
                )

    def _next_hop(self, current: str, location: str) -> str:
        try:
            return normalize(urljoin(current, location))
        except UrlRefused as exc:
            raise FetchRefused(current, f"redirect to a refused URL: {exc.detail}") from None

    def _request(self, url: str) -> _GuardedRequest:
        return _GuardedRequest(
            self._client, url, self._host_slots, urlsplit(url).netloc, self._in_flight
        )


class _GuardedRequest:
    """One streamed GET under the host's concurrency slot, httpx errors translated."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        slots: HostSlots,
        host: str,
        in_flight: asyncio.Semaphore,
    ):
        self._client = client
        self._in_flight = in_flight
        self._url = url
        self._slots = slots
        self._host = host
        self._resp: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        await self._slots.acquire(self._host)
        try:
            await self._in_flight.acquire()
        except BaseException:
            self._slots.release(self._host)
            raise
        try:
            request = self._client.build_request("GET", self._url)
            self._resp = await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            self._release()
            raise FetchTimeout(self._url, f"timed out: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            self._release()
            raise FetchError(self._url, f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            self._release()
            raise
        return self._resp

    def _release(self) -> None:
        self._in_flight.release()
        self._slots.release(self._host)

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._resp is not None:
                await self._resp.aclose()
        finally:
            self._release()


async def read_capped(
    chunks: AsyncIterator[bytes], cap: int, stop_at_head_end: bool
) -> tuple[bytes, bool]:
    """Read at most ``cap`` bytes; with ``stop_at_head_end`` stop once ``</head`` was seen."""
    buf = bytearray()
    try:
        async for chunk in chunks:
            scan_from = max(0, len(buf) - len(_HEAD_END))
            buf.extend(chunk)
            if stop_at_head_end:
                at = buf.lower().find(_HEAD_END, scan_from)
                if at >= 0:
                    end = min(at + len(_HEAD_END) + 1, len(buf))
                    return bytes(buf[: min(end, cap)]), end > cap
            if len(buf) >= cap:
                return bytes(buf[:cap]), True
    except httpx.TimeoutException as exc:
        raise FetchTimeout("", "reading the body timed out") from exc
    except httpx.HTTPError as exc:
        raise FetchError("", f"reading the body failed: {exc}") from exc
    return bytes(buf), False


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
