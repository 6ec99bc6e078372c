"""Encode a collection cycle as a report body (gzip-compressed JSON, see docs/wire-format.md)."""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from agent.runner import Cycle

# Level 5 gets within a few percent of level 9's size at well under half its CPU.
_GZIP_LEVEL = 5
_GZIP_WBITS = 31  # zlib framing with a gzip header and trailer


def encode_report(*, report_id: str, seq: int, cycle: Cycle) -> bytes:
    """The gzip-compressed JSON report for ``cycle``."""
    doc = {
        "report_id": report_id,
        "seq": seq,
        "collected_at": cycle.collected_at,
        "samples": [_sample(s.name, s.labels, s.value, s.ts) for s in cycle.samples],
        "collectors": [
            {
                "name": c.name,
                "ok": c.ok,
                "duration_s": c.duration_s,
                "samples": c.samples,
                "error": c.error,
            }
            for c in cycle.collectors
        ],
    }
    if cycle.urgent:
        doc["urgent"] = True
    return zlib.compress(orjson.dumps(doc), _GZIP_LEVEL, _GZIP_WBITS)


def decode_report(body: bytes) -> Any:
    """The JSON document of a report body (for tests and diagnostics)."""
    return orjson.loads(zlib.decompress(body, _GZIP_WBITS))


def _sample(name: str, labels: dict[str, str], value: float, ts: float | None) -> dict[str, Any]:
    # JSON has no NaN or infinities; the wire format spells them as strings. x - x is 0 for
    # every finite number and NaN otherwise: one cheap test on the hot path.
    v: float | str = value
    if value - value != 0:
        v = "NaN" if value != value else ("+Inf" if value > 0 else "-Inf")
    if ts is None:
        return {"name": name, "labels": labels, "value": v}
    return {"name": name, "labels": labels, "value": v, "ts": ts}
