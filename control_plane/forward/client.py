"""The HTTP side of remote write: one POST per request, its answer mapped to what to do next.

This is the one seam where aiohttp's exceptions become :mod:`control_plane.forward.errors`.
"""

from __future__ import annotations

import time

import aiohttp

from control_plane.alerting.retry import parse_retry_after
from control_plane.config import ForwardConfig
from control_plane.forward import wire
from control_plane.forward.errors import RejectedSendError, RetryableSendError, RetryReason

_DETAIL_BYTES = 512
_USER_AGENT = "haetae-forward/1"


class RemoteWriteClient:
    """Posts compressed WriteRequests to ``cfg.url``. An async context manager."""

    def __init__(self, cfg: ForwardConfig) -> None:
        if cfg.url is None:
            raise ValueError("forward.url is not set")
        self.url = cfg.url
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout_s)
        headers = dict(wire.HEADERS, **{"User-Agent": _USER_AGENT})
        if cfg.bearer_token is not None:
            headers["Authorization"] = f"Bearer {cfg.bearer_token.get_secret_value()}"
        if cfg.basic_auth_username is not None:
            password = cfg.basic_auth_password
            headers["Authorization"] = aiohttp.encode_basic_auth(
                cfg.basic_auth_username, password.get_secret_value() if password else ""
            )
        self._headers = headers
        self._limit = cfg.max_in_flight
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RemoteWriteClient:
        connector = aiohttp.TCPConnector(limit=self._limit)
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, timeout=self._timeout
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, body: bytes) -> None:
        """Returns once the store acknowledged ``body`` (2xx); raises RetryableSendError or
        RejectedSendError otherwise."""
        assert self._session is not None, "use RemoteWriteClient as an async context manager"
        try:
            async with self._session.post(self.url, data=body) as response:
                if 200 <= response.status < 300:
                    await response.read()
                    return
                detail = (await response.content.read(_DETAIL_BYTES)).decode("utf-8", "replace")
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableSendError(RetryReason.CONNECTION, repr(exc)) from exc
        status = response.status
        detail = detail.strip() or response.reason or ""
        if status == 429:
            wait = parse_retry_after(retry_after, time.time()) if retry_after else None
            raise RetryableSendError(RetryReason.THROTTLED, detail, retry_after_s=wait)
        if status >= 500:
            raise RetryableSendError(RetryReason.SERVER, f"HTTP {status}: {detail}")
        raise RejectedSendError(status, detail)
