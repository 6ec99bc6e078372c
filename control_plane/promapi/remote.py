"""Queries older than local retention, answered by the remote store (``promapi.remote_read_url``):
VictoriaMetrics, Mimir or Thanos, which remote write out (control_plane/forward/) fills.

The request goes on as it came (the same parameters, form-encoded) and the store's answer,
already in Prometheus's envelope, comes back unchanged. A store that cannot be reached is
``unavailable`` (503), never a silent partial answer from local data.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from aiohttp import web
from multidict import MultiMapping

from control_plane.promapi.errors import ErrorType, PromApiError

# The store's answer is held whole before it is passed on: bounded.
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class RemoteStore:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._headers = dict(headers or {})

    async def forward(self, endpoint: str, params: MultiMapping[str]) -> web.Response:
        """POST ``params`` to ``<base>/api/v1/<endpoint>``; the answer as it came."""
        url = f"{self._base}/api/v1/{endpoint}"
        form = aiohttp.FormData(list(params.items()))
        try:
            async with self._session.post(
                url, data=form, headers=self._headers, timeout=self._timeout
            ) as resp:
                body = await resp.content.read(MAX_ANSWER_BYTES + 1)
                if len(body) > MAX_ANSWER_BYTES:
                    raise PromApiError(
                        ErrorType.EXECUTION, "the remote store's answer is too large"
                    )
                ctype = resp.headers.get("Content-Type", "application/json")
                return web.Response(status=resp.status, body=body, headers={"Content-Type": ctype})
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PromApiError(
                ErrorType.UNAVAILABLE,
                f"the remote store for ranges past retention is unreachable: {exc!r}"[:300],
            ) from exc
