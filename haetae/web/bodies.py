"""Reading request bodies safely: size caps, gzip, JSON with a clear error."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from aiohttp import web

from haetae.web.problem import ProblemError

# Pass as ``web.Application(handler_args=HANDLER_ARGS)``: bodies are inflated by read_body.
HANDLER_ARGS = {"auto_decompress": False}


async def read_body(request: web.Request, *, max_bytes: int, max_decompressed: int) -> bytes:
    """The raw body, gunzipped when ``Content-Encoding: gzip``; 413 past either cap.

    Apps built for Haetae turn off aiohttp's own inflation (``HANDLER_ARGS``) so that an
    unsupported or corrupt encoding is a problem+json answer and inflation is bounded here.
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise ProblemError(
            415,
            "Unsupported Content-Encoding",
            detail=f"Content-Encoding {encoding!r} is not supported; use gzip or identity",
            type_="unsupported-encoding",
            field="header.Content-Encoding",
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    raw = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        raw.extend(chunk)
        if len(raw) > max_bytes:
            raise _too_large(max_bytes)
    if encoding != "gzip":
        return bytes(raw)
    # A bounded decompressor: a small gzip bomb must not allocate gigabytes.
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(bytes(raw), max_decompressed + 1)
    except zlib.error as exc:
        raise _malformed(f"cannot inflate the gzip body: {exc}") from exc
    if len(out) > max_decompressed or inflater.unconsumed_tail:
        raise _too_large(max_decompressed, decompressed=True)
    if not inflater.eof:
        raise _malformed("the gzip body is truncated")
    return out


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


def _malformed(detail: str) -> ProblemError:
    return ProblemError(400, "Malformed body", detail=detail, type_="malformed-body", field="body")


def _too_large(limit: int, *, decompressed: bool = False) -> ProblemError:
    what = "decompressed body" if decompressed else "body"
    return ProblemError(
        413,
        "Payload Too Large",
        detail=f"the {what} exceeds {limit} bytes",
        type_="payload-too-large",
        field="body",
    )
