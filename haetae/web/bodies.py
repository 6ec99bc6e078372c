"""Reading request bodies safely: size caps, gzip, a Content-Type check, JSON and forms with a
clear error (a 4xx problem, never an exception from deep inside aiohttp)."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import orjson
from aiohttp import http_exceptions, web
from multidict import MultiDictProxy

from haetae.web.problem import ProblemError, invalid

# Pass as ``web.Application(handler_args=HANDLER_ARGS)``: bodies are inflated by read_body.
HANDLER_ARGS = {"auto_decompress": False}
# A body must arrive within this: a client trickling bytes (slow POST) holds no handler for long.
BODY_TIMEOUT_S = 60.0


async def read_body(
    request: web.Request,
    *,
    max_bytes: int,
    max_decompressed: int,
    timeout_s: float = BODY_TIMEOUT_S,
    passthrough: tuple[str, ...] = (),
) -> bytes:
    """The raw body, gunzipped when ``Content-Encoding: gzip``; 413 past either cap, 408 when it
    has not all arrived within ``timeout_s``. A body in one of the ``passthrough`` encodings
    (e.g. remote write's snappy) is returned as sent: the caller inflates it, bounded.

    Apps built for Haetae turn off aiohttp's own inflation (``HANDLER_ARGS``) so that an
    unsupported or corrupt encoding is a problem+json answer and inflation is bounded here.
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip", *passthrough):
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
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.content.iter_chunked(64 * 1024):
                raw.extend(chunk)
                if len(raw) > max_bytes:
                    raise _too_large(max_bytes)
    except TimeoutError:
        raise ProblemError(
            408,
            "Request Timeout",
            detail=f"the body did not arrive within {timeout_s:g} s",
            type_="request-timeout",
            field="body",
        ) from None
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
    request: web.Request,
    *,
    max_bytes: int = 1024 * 1024,
    max_decompressed: int | None = None,
    timeout_s: float = BODY_TIMEOUT_S,
) -> Any:
    """The body parsed as JSON; 415 when its Content-Type says it is something else."""
    require_json(request)
    body = await read_body(
        request,
        max_bytes=max_bytes,
        max_decompressed=max_decompressed or max_bytes * 8,
        timeout_s=timeout_s,
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


def require_json(request: web.BaseRequest) -> None:
    """415 for a body that says it is not JSON. A missing Content-Type is taken as JSON, and so
    are form-encoded, text/plain and octet-stream: ``curl -d`` sends form-encoded by default and
    many clients send raw bytes untyped, while multipart, XML or protobuf can only be a mistake."""
    ctype = request.headers.get("Content-Type")
    if ctype is None:
        return
    mime = ctype.split(";", 1)[0].strip().lower()
    if mime in _JSON_LIKE or mime.endswith("+json"):
        return
    raise _unsupported(mime, "application/json")


_JSON_LIKE = frozenset(
    (
        "",
        "application/json",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "text/plain",
    )
)
_FORM_TYPES = frozenset(("application/x-www-form-urlencoded", "multipart/form-data"))


async def read_form(request: web.Request, *, max_bytes: int = 64 * 1024) -> dict[str, str]:
    """An HTML form's text fields: 415 unless form-encoded or multipart, 413 past ``max_bytes``,
    400 for a body aiohttp cannot parse (a multipart boundary that is never found, invalid
    UTF-8, a broken part) or a field holding NUL. File parts are refused: no form here has one."""
    mime = request.content_type.lower()
    if request.body_exists and mime not in _FORM_TYPES:
        raise _unsupported(mime, "application/x-www-form-urlencoded")
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    try:
        form: MultiDictProxy[Any] = await request.post()
    except web.HTTPException:
        raise
    except (ValueError, http_exceptions.HttpProcessingError) as exc:
        # aiohttp raises ValueError for a missing boundary and UnicodeDecodeError (a ValueError)
        # for bytes that are not UTF-8; its parser's own errors for a broken part.
        raise _malformed(f"cannot read the form: {type(exc).__name__}") from exc
    fields: dict[str, str] = {}
    for name, value in form.items():
        if not isinstance(value, str):
            raise invalid(f"form.{name[:64]}", "file uploads are not accepted here")
        if "\x00" in name or "\x00" in value:
            raise invalid(
                f"form.{name.replace(chr(0), '')[:64]}", "must not contain a NUL character"
            )
        fields.setdefault(name, value)
    return fields


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


def _malformed(detail: str) -> ProblemError:
    return ProblemError(400, "Malformed body", detail=detail, type_="malformed-body", field="body")


def _unsupported(mime: str, expected: str) -> ProblemError:
    return ProblemError(
        415,
        "Unsupported Media Type",
        detail=f"expected {expected}, got {mime[:64]!r}",
        type_="unsupported-media-type",
        field="header.Content-Type",
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
