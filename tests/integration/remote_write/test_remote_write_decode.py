"""The hand-written WriteRequest decoder against bytes made by the protobuf library: what it
yields, what it skips, and every way a request is poison (400 naming the field)."""

from __future__ import annotations

import math
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from remote_write_support import body, now_ms, same_value, snappy, write_request

from control_plane.config import IngestConfig
from control_plane.ingest.decode import labels_key
from control_plane.ingest.prompb import remote_pb2 as pb
from control_plane.ingest.remote_write import (
    STALE_NAN,
    RemoteWriteDecoder,
    WriteBatch,
    batch_id,
)
from haetae.web.problem import ProblemError

STALE = struct.unpack("<d", STALE_NAN)[0]
UP_KEY = '{"instance":"h1:9100","job":"node"}'


def decoder(**cfg: object) -> RemoteWriteDecoder:
    return RemoteWriteDecoder(IngestConfig(**cfg), max_inflated_bytes=1 << 20)


def decode(data: bytes, dec: RemoteWriteDecoder | None = None) -> WriteBatch:
    return (dec or decoder()).decode(data, "prom-1", now=time.time())


def refused(data: bytes, field: str) -> ProblemError:
    with pytest.raises(ProblemError) as err:
        decode(data)
    assert err.value.status == 400
    assert err.value.field is not None and err.value.field.startswith(field), err.value.field
    return err.value


def test_golden_request_decodes_to_the_internal_form() -> None:
    t = now_ms()
    data = body(
        [
            ({"__name__": "up", "job": "node", "instance": "h1:9100"}, [(1.0, t)]),
            ({"__name__": "http_requests_total", "code": "200"}, [(5.0, t - 2000), (7.5, t)]),
        ]
    )
    batch = decode(data)
    got = [(s.name, s.labels, s.labels_key, s.ts, s.value) for s in batch.report.samples]
    assert got == [
        (
            "up",
            {"job": "node", "instance": "h1:9100"},
            '{"instance":"h1:9100","job":"node"}',
            t / 1000,
            1.0,
        ),
        ("http_requests_total", {"code": "200"}, '{"code":"200"}', (t - 2000) / 1000, 5.0),
        ("http_requests_total", {"code": "200"}, '{"code":"200"}', t / 1000, 7.5),
    ]
    assert batch.series == 2
    report = batch.report
    assert report.agent_id == "prom-1" and report.seq is None and not report.urgent
    # The same bytes are the same report (a retry); other bytes another one.
    assert report.report_id == batch_id(data) == decode(data).report.report_id
    assert batch_id(body([({"__name__": "up"}, [(2.0, t)])])) != report.report_id


def test_a_known_label_set_decodes_the_same_as_a_new_one() -> None:
    dec = decoder()
    t = now_ms()
    series = [({"__name__": "m", "i": str(i), "pad": "x" * i}, [(float(i), t)]) for i in range(300)]
    first = decode(body(series), dec).report.samples
    again = decode(body(series), dec).report.samples  # every label set remembered now
    assert [(s.name, s.labels_key, s.ts, s.value) for s in first] == [
        (s.name, s.labels_key, s.ts, s.value) for s in again
    ]
    assert [s.labels for s in again] == [
        {"i": str(i), "pad": "x" * i} if i else {"i": "0"} for i in range(300)
    ]


def test_stale_markers_histograms_exemplars_and_metadata_are_skipped() -> None:
    t = now_ms()
    req = write_request(
        [
            ({"__name__": "gone"}, [(STALE, t)]),
            ({"__name__": "kept"}, [(0.0, t), (math.nan, t + 1), (math.inf, t + 2)]),
        ]
    )
    hist = req.timeseries.add()
    hist.labels.add(name="__name__", value="latency_seconds")
    hist.histograms.add(count_int=3, sum=1.5, schema=1, timestamp=t)
    req.timeseries[1].exemplars.add(value=1.0, timestamp=t)
    req.metadata.add(type=pb.MetricMetadata.COUNTER, metric_family_name="kept", help="h")
    batch = decode(snappy(req.SerializeToString()))
    values = [s.value for s in batch.report.samples]
    assert len(values) == 3 and values[0] == 0.0 and math.isnan(values[1]) and values[2] == math.inf
    assert {s.name for s in batch.report.samples} == {"kept"}
    assert (batch.skipped.stale_markers, batch.skipped.histograms, batch.skipped.exemplars) == (
        1,
        1,
        1,
    )


def test_an_empty_label_value_is_no_label() -> None:
    batch = decode(body([({"__name__": "m", "a": "", "b": "x"}, [(1.0, now_ms())])]))
    assert batch.report.samples[0].labels == {"b": "x"}


def test_sample_fields_in_any_encoding() -> None:
    # Hand-made: timestamp before value, and a Sample with the value left out (zero).
    t = now_ms()
    pair = b"\x0a\x08__name__\x12\x01m"
    label = b"\x0a" + bytes([len(pair)]) + pair
    stamp = _varint(t)
    swapped = b"\x10" + stamp + b"\x09" + struct.pack("<d", 2.5)
    zero = b"\x10" + stamp
    series = label + b"\x12" + bytes([len(swapped)]) + swapped
    series += b"\x12" + bytes([len(zero)]) + zero
    raw = b"\x0a" + bytes([len(series)]) + series
    samples = decode(snappy(raw)).report.samples
    assert [(s.name, s.ts, s.value) for s in samples] == [
        ("m", t / 1000, 2.5),
        ("m", t / 1000, 0.0),
    ]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(
                st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True).filter(
                    lambda n: n != "__name__"
                ),
                st.text(
                    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                    min_size=1,
                    max_size=30,
                ),
                max_size=6,
            ),
            st.lists(
                st.tuples(
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(1, 4_000_000_000_000),
                ),
                min_size=1,
                max_size=4,
            ),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_round_trip_through_the_protobuf_library(
    series: list[tuple[dict[str, str], list[tuple[float, int]]]],
) -> None:
    specs = [({"__name__": "metric_x", **labels}, samples) for labels, samples in series]
    dec = RemoteWriteDecoder(IngestConfig(max_future_skew_s=1e10), max_inflated_bytes=1 << 20)
    for _ in range(2):  # the second pass takes the remembered label sets
        got = dec.decode(body(specs), "p", now=time.time()).report.samples
        want = [
            (labels, ms / 1000, value)
            for labels, samples in series
            for value, ms in samples
            if struct.pack("<d", value) != STALE_NAN
        ]
        assert len(got) == len(want)
        for s, (labels, ts, value) in zip(got, want, strict=True):
            assert s.name == "metric_x" and s.labels == labels
            assert s.labels_key == labels_key(labels)
            assert s.ts == ts and same_value(s.value, value)


# -- poison: 400 naming the field, for everything a sender cannot fix by retrying -------------


def test_bad_snappy_is_400() -> None:
    refused(b"\x10this is not snappy at all", "body")
    refused(b"", "body")
    refused(b"\xff\xff\xff\xff\xff\xff", "body")  # an overlong length prefix


def test_a_body_announcing_more_than_the_cap_is_400_before_inflating() -> None:
    bomb = snappy(b"\x00" * (2 << 20))
    err = refused(bomb, "body")
    assert "announces" in (err.detail or "")


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a\x05\x0a\x03",  # a TimeSeries longer than the body
        b"\x0a\x02\x12\x10",  # a Sample longer than its TimeSeries
        b"\x0f\x00",  # wire type 7
        b"\x0a\x04\x0a\x02\x0a\x7f",  # a label longer than its message
        b"\x08",  # a varint cut off
        b"\x0a\x80",  # a length cut off
        b"\x00\x00",  # field number 0
    ],
)
def test_bad_protobuf_is_400(raw: bytes) -> None:
    refused(snappy(raw), "")


def test_nul_in_a_label_value_is_400() -> None:
    err = refused(body([({"__name__": "m", "path": "a\x00b"}, [(1.0, now_ms())])]), "timeseries[0]")
    assert "NUL" in (err.detail or "")


def test_invalid_utf8_is_400() -> None:
    raw = write_request([({"__name__": "m", "a": "b"}, [(1.0, now_ms())])]).SerializeToString()
    refused(snappy(raw.replace(b"\x12\x01b", b"\x12\x01\xff")), "timeseries[0].labels")


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({"job": "x"}, "timeseries[0].labels"),  # no __name__
        ({"__name__": "1bad"}, "timeseries[0].labels[0].value"),
        ({"__name__": "m", "bad-name": "x"}, "timeseries[0].labels[1].name"),
        ({"__name__": "m", "v": "x" * 1025}, "timeseries[0].labels[1].value"),
        ({"__name__": "m", **{f"l{i}": "v" for i in range(65)}}, "timeseries[0].labels"),
        ({"__name__": "m", **{f"l{i}": "v" * 100 for i in range(30)}}, "timeseries[0].labels"),
    ],
)
def test_labels_outside_the_bounds_are_400(labels: dict[str, str], field: str) -> None:
    refused(body([(labels, [(1.0, now_ms())])]), field)


def test_a_label_twice_is_400() -> None:
    req = write_request([({"__name__": "m", "a": "1"}, [(1.0, now_ms())])])
    req.timeseries[0].labels.add(name="a", value="2")
    refused(snappy(req.SerializeToString()), "timeseries[0].labels[2]")


@pytest.mark.parametrize("ms", [0, -1000, now_ms() + 3_600_000])
def test_timestamps_before_the_epoch_or_in_the_future_are_400(ms: int) -> None:
    refused(body([({"__name__": "m"}, [(1.0, ms)])]), "timeseries[0].samples")


def test_more_samples_than_a_report_may_hold_is_400() -> None:
    data = body([({"__name__": "m", "i": str(i)}, [(1.0, now_ms())]) for i in range(11)])
    with pytest.raises(ProblemError) as err:
        decoder(max_samples_per_report=10).decode(data, "p", now=time.time())
    assert err.value.status == 400 and err.value.field == "body"


# -- hostile bytes: a 400 or samples, never another exception (which would be a 500) ------------

_VALID = write_request(
    [
        ({"__name__": "up", "job": "node", "instance": "h:9100"}, [(1.0, 1_700_000_000_000)]),
        ({"__name__": "m", "a": "b"}, [(0.0, 1_700_000_000_000), (2.5, 1_700_000_001_000)]),
    ]
).SerializeToString()


def _parse_or_400(raw: bytes) -> None:
    dec = decoder()
    for _ in range(2):  # the second time through the remembered label sets
        try:
            samples, _, _ = dec.parse(raw, now=time.time())
        except ProblemError as exc:
            assert exc.status == 400
            continue
        for s in samples:
            assert isinstance(s.value, float) and s.ts > 0 and isinstance(s.name, str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_400_or_samples(raw: bytes) -> None:
    _parse_or_400(raw)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=4),
    st.integers(0, len(_VALID)),
)
def test_corrupted_requests_are_400_or_samples(edits: list[tuple[int, int]], cut: int) -> None:
    raw = bytearray(_VALID)
    for at, byte in edits:
        raw[at] = byte
    _parse_or_400(bytes(raw[:cut]))
