"""Reading request bodies safely: size caps, gzip, JSON with a clear error."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from haetae.web.problem import ProblemError

_ENCODINGS = ("gzip", "deflate")


async def read_body(request: web.Request, *, max_bytes: int, max_decompressed: int) -> bytes:
    """The body, decompressed per ``Content-Encoding``; 413 past either cap.

    aiohttp's parser already inflates gzip/deflate request bodies as they stream in, so the
    compressed size is capped by ``Content-Length`` and the inflated size while reading: a small
    gzip bomb stops at ``max_decompressed`` bytes instead of filling memory.
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    encoded = encoding not in ("", "identity")
    if encoded and encoding not in _ENCODINGS:
        raise ProblemError(
            415,
            "Unsupported Content-Encoding",
            detail=f"Content-Encoding {encoding!r} is not supported; use gzip or identity",
            type_="unsupported-encoding",
            field="header.Content-Encoding",
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    cap = max_decompressed if encoded else max_bytes
    raw = bytearray()
    try:
        async for chunk in request.content.iter_chunked(64 * 1024):
            raw.extend(chunk)
            if len(raw) > cap:
                raise _too_large(cap, decompressed=encoded)
    except (HttpProcessingError, RequestPayloadError) as exc:
        raise ProblemError(
            400,
            "Malformed body",
            detail=f"cannot decode the {encoding} body",
            type_="malformed-body",
            field="body",
        ) from exc
    return bytes(raw)


async def read_json(
    request: web.Request, *, max_bytes: int = 1024 * 1024, max_decompressed: int | None = None
) -> Any:
    body = await read_body(
        request, max_bytes=max_bytes, max_decompressed=max_decompressed or max_bytes * 8
    )
    return parse_json(body)


def parse_json(body: bytes) -> Any:
    if not body:
        raise ProblemError(
            400,
            "Empty body",
            detail="a JSON body is required",
            type_="malformed-body",
            field="body",
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProblemError(
            400, "Malformed JSON", detail=str(exc), type_="malformed-body", field="body"
        ) from exc


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


def _too_large(limit: int, *, decompressed: bool = False) -> ProblemError:
    what = "decompressed body" if decompressed else "body"
    return ProblemError(
        413,
        "Payload Too Large",
        detail=f"the {what} exceeds {limit} bytes",
        type_="payload-too-large",
        field="body",
    )
