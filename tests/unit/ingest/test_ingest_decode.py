"""Report decoding: every malformed input is a 400 naming the field; good input round-trips."""

from __future__ import annotations

import math
import uuid
from typing import Any

import orjson
import pytest

from control_plane.config import IngestConfig
from control_plane.ingest.decode import decode_report, labels_key
from haetae.web.problem import ProblemError

NOW = 1_732_720_000.0
CFG = IngestConfig(max_samples_per_report=5, max_future_skew_s=600)
RID = "5f0c7c1e-8a57-4a61-9f43-0b1f9a6f7e21"


def report(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "report_id": RID,
        "seq": 17,
        "collected_at": NOW - 1,
        "samples": [
            {"name": "haetae_host_cpu_usage_ratio", "labels": {"cpu": "total"}, "value": 0.12},
            {"name": "app_requests_total", "labels": {"path": "/"}, "value": 42, "ts": NOW - 2},
        ],
        "collectors": [
            {"name": "host", "ok": True, "duration_s": 0.0012, "samples": 31, "error": None}
        ],
    }
    doc.update(overrides)
    return doc


def sample(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "m", "labels": {}, "value": 1}
    base.update(fields)
    return base


def decode(doc: Any) -> Any:
    body = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return decode_report(body, "web-1", now=NOW, cfg=CFG)


def test_a_valid_report_decodes() -> None:
    r = decode(report())
    assert r.agent_id == "web-1"
    assert r.report_id == uuid.UUID(RID)
    assert r.seq == 17
    first, second = r.samples
    assert (first.name, first.labels, first.value, first.ts) == (
        "haetae_host_cpu_usage_ratio",
        {"cpu": "total"},
        0.12,
        NOW - 1,  # ts defaults to collected_at
    )
    assert second.ts == NOW - 2 and second.value == 42.0 and type(second.value) is float
    assert r.collectors[0].name == "host" and r.collectors[0].ok is True


def test_label_key_is_canonical_sorted_compact_json() -> None:
    r = decode(report(samples=[sample(labels={"b": "2", "a": "1"}), sample(labels=None)]))
    assert r.samples[0].labels_key == '{"a":"1","b":"2"}' == labels_key({"a": "1", "b": "2"})
    assert r.samples[1].labels == {} and r.samples[1].labels_key == "{}"


def test_special_values_and_optional_fields() -> None:
    doc = report(
        samples=[sample(value="NaN"), sample(value="+Inf"), sample(value="-Inf")],
        seq=None,
        collectors=None,
    )
    r = decode(doc)
    values = [s.value for s in r.samples]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]
    assert r.seq is None and r.collectors == []


def test_empty_samples_and_unknown_top_level_keys_are_fine() -> None:
    r = decode(report(samples=[], agent_version="1.2"))
    assert r.samples == []


def test_urgent_is_optional_and_boolean() -> None:
    assert decode(report()).urgent is False
    assert decode(report(urgent=True)).urgent is True


def test_a_sample_at_the_future_skew_limit_is_accepted() -> None:
    assert decode(report(samples=[sample(ts=NOW + 600)])).samples[0].ts == NOW + 600


BAD: list[tuple[str, Any, str]] = [
    ("empty body", b"", "body"),
    ("not json", b"{nope", "body"),
    ("json array", [], "body"),
    ("overflowing number", b'{"report_id": 1e400}', "body"),
    ("no report_id", report(report_id=None), "report_id"),
    ("report_id not uuid", report(report_id="abc"), "report_id"),
    ("report_id number", report(report_id=5), "report_id"),
    ("seq negative", report(seq=-1), "seq"),
    ("urgent not boolean", report(urgent="yes"), "urgent"),
    ("seq string", report(seq="1"), "seq"),
    ("seq bool", report(seq=True), "seq"),
    ("seq float", report(seq=1.5), "seq"),
    ("no collected_at", report(collected_at=None), "collected_at"),
    ("collected_at string", report(collected_at="2024-11-27"), "collected_at"),
    ("collected_at zero", report(collected_at=0), "collected_at"),
    ("collected_at future", report(collected_at=NOW + 601), "collected_at"),
    ("no samples", report(samples=None), "samples"),
    ("samples object", report(samples={}), "samples"),
    ("too many samples", report(samples=[sample()] * 6), "samples"),
    ("sample not object", report(samples=[sample(), 3]), "samples[1]"),
    ("name missing", report(samples=[{"value": 1}]), "samples[0].name"),
    ("name number", report(samples=[sample(name=5)]), "samples[0].name"),
    ("name list", report(samples=[sample(name=["a"])]), "samples[0].name"),
    ("name bad char", report(samples=[sample(), sample(name="a-b")]), "samples[1].name"),
    ("name digit first", report(samples=[sample(name="1abc")]), "samples[0].name"),
    ("name too long", report(samples=[sample(name="a" * 257)]), "samples[0].name"),
    ("labels list", report(samples=[sample(labels=["a"])]), "samples[0].labels"),
    ("label name bad", report(samples=[sample(labels={"a.b": "x"})]), "samples[0].labels"),
    ("label name colon", report(samples=[sample(labels={"a:b": "x"})]), "samples[0].labels"),
    (
        "too many labels",
        report(samples=[sample(labels={f"l{i}": "" for i in range(65)})]),
        "samples[0].labels",
    ),
    ("label value int", report(samples=[sample(labels={"path": 1})]), "samples[0].labels.path"),
    ("label value null", report(samples=[sample(labels={"p": None})]), "samples[0].labels.p"),
    ("label value obj", report(samples=[sample(labels={"p": {}})]), "samples[0].labels.p"),
    ("label value long", report(samples=[sample(labels={"p": "x" * 1025})]), "samples[0].labels.p"),
    # What PostgreSQL would refuse (issue 9): NUL, invalid UTF-8, label sets past the btree
    ("label value NUL", report(samples=[sample(labels={"p": "x\u0000y"})]), "samples[0].labels.p"),
    (
        "label set over the index bound",
        report(samples=[sample(labels={f"l{i}": "v" * 1024 for i in range(64)})]),
        "samples[0].labels",
    ),
    (
        "label set over the bound in UTF-8 bytes",
        report(samples=[sample(labels={"a": "\u00e9" * 1000, "b": "x" * 100})]),
        "samples[0].labels",
    ),
    (
        "label set over the bound once escaped",
        report(samples=[sample(labels={"a": "\u0001" * 400})]),
        "samples[0].labels",
    ),
    ("invalid UTF-8", b'{"report_id": "x\xff"}', "body"),
    ("lone surrogate", b'{"report_id": "\\ud800"}', "body"),
    ("UTF-8 encoded surrogate", b'{"report_id": "\xed\xa0\x80"}', "body"),
    (
        "collector name NUL",
        report(collectors=[{"name": "h\u0000", "ok": True}]),
        "collectors[0].name",
    ),
    ("value missing", report(samples=[{"name": "m"}]), "samples[0].value"),
    ("value string", report(samples=[sample(value="1.0")]), "samples[0].value"),
    ("value inf word", report(samples=[sample(value="Inf")]), "samples[0].value"),
    ("value bool", report(samples=[sample(value=True)]), "samples[0].value"),
    ("value null", report(samples=[sample(value=None)]), "samples[0].value"),
    ("ts string", report(samples=[sample(ts="now")]), "samples[0].ts"),
    ("ts negative", report(samples=[sample(ts=-5)]), "samples[0].ts"),
    ("ts future", report(samples=[sample(), sample(), sample(ts=NOW + 700)]), "samples[2].ts"),
    ("ts bool", report(samples=[sample(ts=True)]), "samples[0].ts"),
    ("collectors object", report(collectors={}), "collectors"),
    ("collector not object", report(collectors=[1]), "collectors[0]"),
    ("collector no name", report(collectors=[{"ok": True}]), "collectors[0].name"),
    ("collector ok str", report(collectors=[{"name": "h", "ok": "yes"}]), "collectors[0].ok"),
    (
        "collector duration",
        report(collectors=[{"name": "h", "ok": True, "duration_s": -1}]),
        "collectors[0].duration_s",
    ),
    (
        "collector samples",
        report(collectors=[{"name": "h", "ok": True, "samples": 1.5}]),
        "collectors[0].samples",
    ),
    (
        "collector error",
        report(collectors=[{"name": "h", "ok": False, "error": 3}]),
        "collectors[0].error",
    ),
]


@pytest.mark.parametrize(("doc", "field"), [(d, f) for _, d, f in BAD], ids=[c for c, _, _ in BAD])
def test_bad_input_is_a_400_naming_the_field(doc: Any, field: str) -> None:
    with pytest.raises(ProblemError) as err:
        decode(doc)
    assert err.value.status == 400
    assert err.value.field == field
    assert err.value.detail


def test_label_sets_up_to_the_bound_are_accepted() -> None:
    labels = {"a": "v" * 1000, "b": "v" * 1000}  # 2,017 bytes stored
    (s,) = decode(report(samples=[sample(labels=labels)])).samples
    assert len(s.labels_key.encode()) <= 2048


def test_validation_memo_never_hides_a_bad_label_value() -> None:
    # The same label *names* with a valid and then an invalid value type.
    decode(report(samples=[sample(labels={"k": "1"})]))
    with pytest.raises(ProblemError) as err:
        decode(report(samples=[sample(labels={"k": 1})]))
    assert err.value.field == "samples[0].labels.k"
