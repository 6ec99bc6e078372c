"""Opaque keyset-pagination cursors: base64url of a small JSON object; pure."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from haetae.web.problem import invalid
from haetae.web.validation import MAX_ID, MAX_NAME

_VERSION = 1


def encode_cursor(after: Any) -> str:
    raw = orjson.dumps({"v": _VERSION, "after": after})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(text: str, *, kind: type, where: str = "query.cursor") -> Any:
    """The ``after`` key a cursor carries, which must be of type ``kind``; 400 otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid(where, "not a cursor returned by this API") from None
    if not isinstance(doc, dict) or doc.get("v") != _VERSION or type(doc.get("after")) is not kind:
        raise invalid(where, "not a cursor returned by this API")
    after = doc["after"]
    # A forged cursor must not carry what PostgreSQL refuses (bigint overflow, NUL in text).
    if isinstance(after, int) and not 0 <= after <= MAX_ID:
        raise invalid(where, "not a cursor returned by this API")
    if isinstance(after, str) and ("\x00" in after or len(after) > MAX_NAME):
        raise invalid(where, "not a cursor returned by this API")
    return after
