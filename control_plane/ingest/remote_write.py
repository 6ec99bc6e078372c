"""Prometheus remote write 1.0 in: a snappy-compressed protobuf ``WriteRequest`` decoded to the
internal form of an agent report (an ``InOrderReport``), so it takes the same path from there
(series limits, group commit, windows, rules). Pure: no I/O.

The protobuf is read by hand rather than through generated classes (``prompb/remote_pb2.py`` is
what the tests and the benchmark encode with): Prometheus sends each series' labels as the same
bytes in every request, so one dictionary lookup on those bytes replaces decoding and validating
the labels again; the upb runtime has to build every label's strings each time
(docs/performance.md, "Remote write in", has both measured).

Semantics (docs/wire-format.md, "Prometheus remote write"):

* a batch is refused whole (400, Prometheus drops it) for anything malformed or outside the
  bounds of every other input: it is poison, retrying cannot help;
* staleness markers are not stored (our queries end a series after the lookback instead), nor are
  native histograms and exemplars (counted in :class:`Skipped`); metadata is ignored;
* a label with an empty value is the same as no label, as in Prometheus;
* a TimeSeries lists its labels before its samples (protobuf allows any order; every sender we
  know writes fields in number order): labels after a sample are refused (400);
* the report id is a hash of the request body: Prometheus re-sends the very same bytes when it
  retries, so a retried batch is a duplicate report and never stored twice;
* a sample at or before the newest instant stored for its series is dropped, not stored (a
  Prometheus receiver refuses it as out of order or a duplicate): the group commit checks that
  in ``batch.prepare``, where each sample's series is already looked up.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass

import cramjam
import orjson

from control_plane.config import IngestConfig
from control_plane.ingest.batch import InOrderReport
from control_plane.ingest.decode import Sample
from control_plane.query.matchers import LABEL_NAME, METRIC_NAME
from haetae.web.problem import invalid
from haetae.web.validation import (
    MAX_LABEL_NAME,
    MAX_LABEL_SET_BYTES,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_METRIC_NAME,
)

# Prometheus's staleness marker: one particular NaN (model/value.StaleNaN), little-endian.
STALE_NAN = struct.pack("<Q", 0x7FF0000000000002)
_MEMO_LIMIT = 200_000
_UNPACK_DOUBLE = struct.Struct("<d").unpack_from
_INT64 = 1 << 64
_INT63 = 1 << 63
# (name, labels without __name__, canonical labels key)
Series = tuple[str, dict[str, str], str]


@dataclass(slots=True)
class Skipped:
    """What a request held that is not stored, by kind (never a reason to refuse it)."""

    stale_markers: int = 0
    histograms: int = 0
    exemplars: int = 0
    out_of_order: int = 0
    duplicates: int = 0


@dataclass(slots=True)
class WriteBatch:
    report: InOrderReport
    skipped: Skipped
    series: int

    def late(self) -> Skipped:
        """The samples the flush dropped as late (out of order, duplicates): known once the
        report is stored (``skipped`` holds what decoding set aside)."""
        return Skipped(out_of_order=self.report.out_of_order, duplicates=self.report.duplicates)


def decompressed_size(body: bytes) -> int:
    """The length the snappy block format announces up front (its leading varint): checked
    against the cap before anything is inflated."""
    value, pos = _varint(body, 0, len(body), "body")
    if pos > 5:
        raise invalid("body", "not a snappy block: the length prefix is too long")
    return value


def inflate(body: bytes, *, max_bytes: int) -> bytes:
    """The snappy block (not framed) ``body`` inflated, bounded by ``max_bytes``."""
    if not body:
        raise invalid("body", "the body is empty", hint="send a snappy-compressed WriteRequest")
    size = decompressed_size(body)
    if size > max_bytes:
        raise invalid(
            "body",
            f"the snappy body announces {size} bytes, over the limit of {max_bytes}",
            hint="lower queue_config.max_samples_per_send",
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise invalid("body", f"cannot inflate the snappy body: {exc}") from None


def batch_id(body: bytes) -> uuid.UUID:
    """The report id of a request: 128 bits of BLAKE2b of its (compressed) body."""
    return uuid.UUID(bytes=hashlib.blake2b(body, digest_size=16).digest())


class RemoteWriteDecoder:
    """Decodes WriteRequests; remembers label sets it has already validated (bounded)."""

    def __init__(self, cfg: IngestConfig, *, max_inflated_bytes: int) -> None:
        self._cfg = cfg
        self._max_inflated = max_inflated_bytes
        self._series: dict[bytes, Series] = {}

    def decode(self, body: bytes, source: str, *, now: float) -> WriteBatch:
        """``body`` as received (snappy) from the sender known as ``source`` (its agent id)."""
        raw = inflate(body, max_bytes=self._max_inflated)
        samples, skipped, series = self.parse(raw, now=now)
        report = InOrderReport(source, batch_id(body), None, now, samples)
        return WriteBatch(report, skipped, series)

    def parse(self, buf: bytes, *, now: float) -> tuple[list[Sample], Skipped, int]:
        """The samples of an inflated WriteRequest, what was skipped and how many series."""
        try:
            return self._parse(buf, now)
        except IndexError:  # the fast paths index ahead; only a cut-off message gets there
            raise invalid("body", "truncated protobuf message") from None

    def _parse(self, buf: bytes, now: float) -> tuple[list[Sample], Skipped, int]:
        # The hot loop, inline: Prometheus encodes every TimeSeries as its labels, then its
        # Sample messages of value (fixed64) then timestamp (varint). Anything else goes
        # through the general helpers.
        latest_ms = int((now + self._cfg.max_future_skew_s) * 1000)
        limit = self._cfg.max_samples_per_report
        memo = self._series
        # Timestamp bytes -> seconds, per request: a scrape's samples share one timestamp.
        times: dict[bytes, float] = {}
        out: list[Sample] = []
        append = out.append
        unpack = _UNPACK_DOUBLE
        skipped = Skipped()
        end = len(buf)
        pos = 0
        index = 0
        while pos < end:
            if buf[pos] != 0x0A:  # not a TimeSeries (metadata, or a field a newer sender added)
                pos = _skip(buf, pos + 1, end, buf[pos], "body")
                continue
            n = buf[pos + 1]
            if n < 0x80:
                pos += 2
            elif buf[pos + 2] < 0x80:  # a TimeSeries of 128 bytes to 16 KiB
                n = (n & 0x7F) | (buf[pos + 2] << 7)
                pos += 3
            else:
                n, pos = _length(buf, pos + 1, end, "body")
            ts_end = pos + n
            if ts_end > end:
                raise invalid(f"timeseries[{index}]", "truncated protobuf message")
            start = pos
            # Most often a TimeSeries is a known run of labels and one Sample of 16 bytes (a
            # timestamp of today takes 6): try that split before scanning the labels.
            series = None
            tail = ts_end - 18
            if tail > start and buf[tail] == 0x12 and buf[tail + 1] == 16:
                series = memo.get(buf[start:tail])
                if series is not None:
                    pos = tail
            if series is None:
                while pos < ts_end and buf[pos] == 0x0A:
                    m = buf[pos + 1]
                    pos = pos + 2 + m if m < 0x80 else _skip(buf, pos + 1, ts_end, 0x0A, "body")
                if pos > ts_end:
                    raise invalid(f"timeseries[{index}]", "truncated protobuf message")
                series = memo.get(buf[start:pos])
                if series is None:
                    series = self._series_of(buf, start, ts_end, f"timeseries[{index}]")
            name, labels, key = series
            while pos < ts_end:
                n = buf[pos + 1]
                if (
                    buf[pos] == 0x12
                    and 11 <= n < 0x80
                    and buf[pos + 2] == 0x09
                    and (buf[pos + 11] == 0x10)
                ):
                    s_end = pos + 2 + n
                    if s_end > ts_end:
                        raise invalid(f"timeseries[{index}]", "truncated protobuf message")
                    stamp = buf[pos + 12 : s_end]
                    ts = times.get(stamp)
                    if ts is None:
                        ts = times[stamp] = _seconds(stamp, latest_ms, f"timeseries[{index}]")
                    value = unpack(buf, pos + 3)[0]
                    if value != value and buf[pos + 3 : pos + 11] == STALE_NAN:
                        skipped.stale_markers += 1
                        pos = s_end
                        continue
                    pos = s_end
                    append(Sample(name, labels, key, ts, value))
                    continue
                pos = self._field(buf, pos, ts_end, series, latest_ms, out, skipped, index)
            if len(out) > limit:
                raise invalid(
                    "body",
                    f"more than {limit} samples in one request",
                    hint="lower queue_config.max_samples_per_send",
                )
            index += 1
        return out, skipped, index

    def _field(
        self,
        buf: bytes,
        pos: int,
        end: int,
        series: Series,
        latest_ms: int,
        out: list[Sample],
        skipped: Skipped,
        index: int,
    ) -> int:
        """One TimeSeries field the fast path does not take; returns where the next starts."""
        where = f"timeseries[{index}]"
        tag = buf[pos]
        if tag == 0x12:  # a Sample in another encoding (zero values left out, other order)
            n, pos = _length(buf, pos + 1, end, where)
            value, ms = _sample(buf, pos, pos + n, where)
            if value != value and struct.pack("<d", value) == STALE_NAN:
                skipped.stale_markers += 1
            else:
                ts = _checked_seconds(ms, latest_ms, where)
                out.append(Sample(series[0], series[1], series[2], ts, value))
            return pos + n
        if tag == 0x0A:
            raise invalid(
                f"{where}.labels",
                "labels must come before the samples",
                hint="every known sender does so",
            )
        if tag == 0x1A:
            skipped.exemplars += 1
        elif tag == 0x22:
            skipped.histograms += 1
        return _skip(buf, pos + 1, end, tag, where)

    def _series_of(self, buf: bytes, start: int, end: int, where: str) -> Series:
        """Decode and validate the labels leading the TimeSeries at ``buf[start:end]``, and
        remember the result by their bytes."""
        pairs: list[tuple[str, str]] = []
        pos = start
        while pos < end and buf[pos] == 0x0A:
            n, pos = _length(buf, pos + 1, end, where)
            pairs.append(_label(buf, pos, pos + n, f"{where}.labels[{len(pairs)}]"))
            pos += n
        series = _check_series(pairs, where)
        memo = self._series
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()  # wholesale: a miss only costs one decode and check again
        memo[buf[start:pos]] = series
        return series


def _check_series(pairs: list[tuple[str, str]], where: str) -> Series:
    """The same bounds as an agent report's series (decode.py, haetae.web.validation)."""
    name: str | None = None
    labels: dict[str, str] = {}
    seen: set[str] = set()
    for i, (lname, lvalue) in enumerate(pairs):
        at = f"{where}.labels[{i}]"
        if lname in seen:
            raise invalid(at, f"label {lname[:MAX_LABEL_NAME]!r} appears twice")
        seen.add(lname)
        if "\x00" in lvalue:
            raise invalid(f"{at}.value", "must not contain a NUL character")
        if lname == "__name__":
            if len(lvalue) > MAX_METRIC_NAME or METRIC_NAME.fullmatch(lvalue) is None:
                raise invalid(
                    f"{at}.value",
                    f"{lvalue[:MAX_METRIC_NAME]!r} is not a metric name",
                    hint=f"[a-zA-Z_:][a-zA-Z0-9_:]*, at most {MAX_METRIC_NAME} characters",
                )
            name = lvalue
            continue
        if len(lname) > MAX_LABEL_NAME or LABEL_NAME.fullmatch(lname) is None:
            raise invalid(
                f"{at}.name",
                f"{lname[:MAX_LABEL_NAME]!r} is not a label name",
                hint=f"[a-zA-Z_][a-zA-Z0-9_]*, at most {MAX_LABEL_NAME} characters",
            )
        if len(lvalue) > MAX_LABEL_VALUE:
            raise invalid(f"{at}.value", f"label value longer than {MAX_LABEL_VALUE} characters")
        if lvalue:  # an empty value is no label (Prometheus semantics)
            labels[lname] = lvalue
    if name is None:
        raise invalid(f"{where}.labels", "a series needs a __name__ label")
    if len(labels) > MAX_LABELS:
        raise invalid(f"{where}.labels", f"more than {MAX_LABELS} labels besides __name__")
    key = orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)
    if len(key) > MAX_LABEL_SET_BYTES:
        raise invalid(
            f"{where}.labels",
            f"the label set takes {len(key)} bytes as stored, over the limit of "
            f"{MAX_LABEL_SET_BYTES}",
            hint="fewer or shorter labels",
        )
    return name, labels, key.decode()


def _label(buf: bytes, pos: int, end: int, where: str) -> tuple[str, str]:
    name = value = b""
    while pos < end:
        tag = buf[pos]
        if tag == 0x0A or tag == 0x12:
            n, pos = _varint(buf, pos + 1, end, where)
            if pos + n > end:
                raise invalid(where, "truncated protobuf message")
            if tag == 0x0A:
                name = buf[pos : pos + n]
            else:
                value = buf[pos : pos + n]
            pos += n
        else:
            pos = _skip(buf, pos + 1, end, tag, where)
    try:
        return name.decode(), value.decode()
    except UnicodeDecodeError:
        raise invalid(where, "label names and values must be valid UTF-8") from None


def _sample(buf: bytes, pos: int, end: int, where: str) -> tuple[float, int]:
    """A Sample message in any field order, with proto3's omitted zero values."""
    value = 0.0
    ms = 0
    while pos < end:
        tag = buf[pos]
        if tag == 0x09:
            if pos + 9 > end:
                raise invalid(where, "truncated protobuf message")
            value = _UNPACK_DOUBLE(buf, pos + 1)[0]
            pos += 9
        elif tag == 0x10:
            ms, pos = _varint(buf, pos + 1, end, where)
        else:
            pos = _skip(buf, pos + 1, end, tag, where)
    return value, ms


def _varint(buf: bytes, pos: int, end: int, where: str) -> tuple[int, int]:
    result = shift = 0
    while pos < end and shift < 64:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise invalid(where, "truncated or overlong protobuf varint")


def _length(buf: bytes, pos: int, end: int, where: str) -> tuple[int, int]:
    """A length-delimited field's length (one byte, mostly) and where its payload starts;
    the payload must fit before ``end``."""
    n = buf[pos] if pos < end else 0x80
    if n < 0x80:
        pos += 1
    else:
        n, pos = _varint(buf, pos, end, where)
    if pos + n > end:
        raise invalid(where, "truncated protobuf message")
    return n, pos


def _skip(buf: bytes, pos: int, end: int, tag: int, where: str) -> int:
    """Past the field whose (one-byte-read) tag is ``tag``, starting at its payload."""
    if tag & 0x80:  # a field number past 15: the tag itself goes on
        full, pos = _varint(buf, pos - 1, end, where)
        tag = full
    wire = tag & 7
    if tag >> 3 == 0:
        raise invalid(where, "not a protobuf message (field number 0)")
    if wire == 0:
        _, pos = _varint(buf, pos, end, where)
    elif wire == 1:
        pos += 8
    elif wire == 2:
        n, pos = _varint(buf, pos, end, where)
        pos += n
    elif wire == 5:
        pos += 4
    else:  # groups (3, 4) are proto2-only and not in these messages; 6, 7 do not exist
        raise invalid(where, f"not a remote-write protobuf message (wire type {wire})")
    if pos > end:
        raise invalid(where, "truncated protobuf message")
    return pos


def _seconds(stamp: bytes, latest_ms: int, where: str) -> float:
    """A Sample's timestamp field (the varint bytes of int64 milliseconds) as unix seconds."""
    ms, pos = _varint(stamp, 0, len(stamp), where)
    if pos != len(stamp):
        raise invalid(where, "a Sample holds unknown fields after its timestamp")
    return _checked_seconds(ms, latest_ms, where)


def _checked_seconds(ms: int, latest_ms: int, where: str) -> float:
    if ms >= _INT63:  # int64 as protobuf encodes it: two's complement in ten bytes
        ms -= _INT64
    if ms <= 0:
        raise invalid(f"{where}.samples", f"timestamp {ms} ms is not after the epoch")
    if ms > latest_ms:
        raise invalid(
            f"{where}.samples",
            f"timestamp {ms} ms is more than the allowed skew ahead of the server clock "
            f"({latest_ms} ms)",
            hint="check the sender's clock (NTP)",
        )
    return ms / 1000
