"""Report encoding per docs/wire-format.md."""

from __future__ import annotations

import gzip
import math

import orjson

from agent.collectors.base import Sample
from agent.report import decode_report, encode_report
from agent.runner import CollectorRun, Cycle


def test_report_document_and_gzip() -> None:
    cycle = Cycle(
        collected_at=1732720000.123,
        samples=[
            Sample("haetae_host_cpu_usage_ratio", {"cpu": "total"}, 0.12),
            Sample("app_requests_total", {"path": "/"}, 42, 1732720000.1),
            Sample("x_nan", {}, math.nan),
            Sample("x_pinf", {}, math.inf),
            Sample("x_ninf", {}, -math.inf),
        ],
        collectors=[
            CollectorRun("host", True, 0.0012, 1),
            CollectorRun("app", False, 2.0, 0, "timed out"),
        ],
    )
    body = encode_report(report_id="rid-1", seq=17, cycle=cycle)
    assert body[:2] == b"\x1f\x8b"  # a gzip member, as Content-Encoding: gzip promises
    doc = orjson.loads(gzip.decompress(body))
    assert doc == decode_report(body)
    assert doc["report_id"] == "rid-1" and doc["seq"] == 17
    assert doc["collected_at"] == 1732720000.123
    assert doc["samples"][0] == {
        "name": "haetae_host_cpu_usage_ratio",
        "labels": {"cpu": "total"},
        "value": 0.12,
    }
    assert doc["samples"][1]["ts"] == 1732720000.1
    assert [s["value"] for s in doc["samples"][2:]] == ["NaN", "+Inf", "-Inf"]
    assert doc["collectors"] == [
        {"name": "host", "ok": True, "duration_s": 0.0012, "samples": 1, "error": None},
        {"name": "app", "ok": False, "duration_s": 2.0, "samples": 0, "error": "timed out"},
    ]
