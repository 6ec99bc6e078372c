"""Decoding and validating one agent report (docs/wire-format.md): pure, no I/O.

Every way a body can be wrong becomes a 400 ``ProblemError`` naming the field at fault
(``samples[3].labels.path``), so the agent knows to drop the report rather than retry it.

Speed matters (the ingest goal is >= 100k samples/s in one process), so the per-sample path does
only dict lookups and type checks: metric names and label sets already seen valid are remembered
in small bounded memo sets, and the canonical label key is one ``orjson.dumps`` call.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from control_plane.config import IngestConfig
from control_plane.query.matchers import LABEL_NAME, METRIC_NAME
from haetae.web.bodies import parse_json
from haetae.web.problem import invalid
from haetae.web.validation import (
    MAX_LABEL_NAME,
    MAX_LABEL_SET_BYTES,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_METRIC_NAME,
    MAX_NAME,
)

AGENT_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# The bounds of every route (haetae.web.validation), so a label set always fits the series
# table's unique btree: see docs/wire-format.md. Invalid UTF-8 and lone surrogates never get
# this far (orjson refuses them while parsing).
MAX_NAME_LEN = MAX_METRIC_NAME
MAX_LABEL_NAME_LEN = MAX_LABEL_NAME
MAX_LABEL_VALUE_LEN = MAX_LABEL_VALUE
MAX_SEQ = 2**63 - 1

_SPECIAL_VALUES = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}
_MEMO_LIMIT = 100_000


@dataclass(slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    # Canonical identity of the label set: compact JSON with sorted keys.
    labels_key: str
    ts: float
    value: float


@dataclass(slots=True)
class CollectorStatus:
    name: str
    ok: bool
    duration_s: float | None = None
    samples: int | None = None
    error: str | None = None


@dataclass(slots=True)
class Report:
    agent_id: str
    report_id: uuid.UUID
    seq: int | None
    collected_at: float
    samples: list[Sample]
    collectors: list[CollectorStatus] = field(default_factory=list)
    # Pushed samples the agent sent at once: committed without waiting to batch (writer).
    urgent: bool = False


def labels_key(labels: dict[str, str]) -> str:
    """The canonical key of a label set (what ``series.labels_key`` stores)."""
    return orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode()


# Pure memoisation of "this string passed validation" (no behaviour depends on it): plain sets,
# because a Python-level __contains__ would cost more than the lookup it saves.
_valid_names: set[str] = set()
_valid_label_keys: set[str] = set()


def _remember(memo: set[str], item: str) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()  # wholesale: a miss only costs one re-validation
    memo.add(item)


def decode_report(body: bytes, agent_id: str, *, now: float, cfg: IngestConfig) -> Report:
    """Parse and validate a report body sent by ``agent_id`` at server time ``now``."""
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise invalid("body", "the report must be a JSON object")
    report_id = _report_id(doc.get("report_id"))
    seq = _seq(doc.get("seq"))
    latest = now + cfg.max_future_skew_s
    collected_at = _timestamp(doc.get("collected_at"), "collected_at", latest)
    raw_samples = doc.get("samples")
    if not isinstance(raw_samples, list):
        raise invalid("samples", "samples must be an array")
    if len(raw_samples) > cfg.max_samples_per_report:
        raise invalid(
            "samples",
            f"{len(raw_samples)} samples exceed the limit of {cfg.max_samples_per_report} "
            "per report",
            hint="send smaller reports more often",
        )
    samples = _samples(raw_samples, collected_at, latest)
    collectors = _collectors(doc.get("collectors"))
    urgent = doc.get("urgent", False)
    if not isinstance(urgent, bool):
        raise invalid("urgent", "urgent must be true or false")
    return Report(agent_id, report_id, seq, collected_at, samples, collectors, urgent)


def _samples(raw: list[Any], default_ts: float, latest: float) -> list[Sample]:
    # The hot loop: locals for globals, the common cases inline, the rest in helpers.
    out: list[Sample] = []
    append = out.append
    names = _valid_names
    label_keys = _valid_label_keys
    dumps = orjson.dumps
    sort_keys = orjson.OPT_SORT_KEYS
    for i, item in enumerate(raw):
        if type(item) is not dict:
            raise invalid(f"samples[{i}]", "a sample must be a JSON object")
        name = item.get("name")
        # type() first: an unhashable name (a list) must not reach the set lookup.
        if type(name) is not str or name not in names:
            name = _check_name(name, i)
        labels = item.get("labels")
        if labels is None:
            labels = {}
            key = "{}"
        elif type(labels) is dict:
            raw_key = dumps(labels, option=sort_keys)
            key = raw_key.decode()
            if key not in label_keys:
                _check_labels(labels, i, len(raw_key))
                _remember(label_keys, key)
        else:
            raise invalid(f"samples[{i}].labels", "labels must be an object of strings")
        value: Any = item.get("value")
        kind = type(value)
        if kind is int:
            value = float(value)
        elif kind is not float:
            value = _value(value, i)
        ts = item.get("ts")
        ts = default_ts if ts is None else _timestamp(ts, f"samples[{i}].ts", latest)
        append(Sample(name, labels, key, ts, value))
    return out


def _check_name(name: Any, i: int) -> str:
    where = f"samples[{i}].name"
    if not isinstance(name, str):
        raise invalid(where, "name must be a string")
    if len(name) > MAX_NAME_LEN or METRIC_NAME.fullmatch(name) is None:
        raise invalid(
            where,
            f"{name[:MAX_NAME_LEN]!r} is not a metric name",
            hint=f"[a-zA-Z_:][a-zA-Z0-9_:]*, at most {MAX_NAME_LEN} characters",
        )
    _remember(_valid_names, name)
    return name


def _check_labels(labels: dict[str, Any], i: int, stored_bytes: int) -> None:
    if len(labels) > MAX_LABELS:
        raise invalid(f"samples[{i}].labels", f"more than {MAX_LABELS} labels")
    for lname, lvalue in labels.items():
        if len(lname) > MAX_LABEL_NAME_LEN or LABEL_NAME.fullmatch(lname) is None:
            raise invalid(
                f"samples[{i}].labels",
                f"{lname[:MAX_LABEL_NAME_LEN]!r} is not a label name",
                hint=f"[a-zA-Z_][a-zA-Z0-9_]*, at most {MAX_LABEL_NAME_LEN} characters",
            )
        if not isinstance(lvalue, str):
            raise invalid(f"samples[{i}].labels.{lname}", "label values must be strings")
        if len(lvalue) > MAX_LABEL_VALUE_LEN:
            raise invalid(
                f"samples[{i}].labels.{lname}",
                f"label value longer than {MAX_LABEL_VALUE_LEN} characters",
            )
        if "\x00" in lvalue:
            raise invalid(f"samples[{i}].labels.{lname}", "must not contain a NUL character")
    # Checked on the stored form (escapes and multi-byte characters included): what the index
    # holds.
    if stored_bytes > MAX_LABEL_SET_BYTES:
        raise invalid(
            f"samples[{i}].labels",
            f"the label set takes {stored_bytes} bytes as stored, over the limit of "
            f"{MAX_LABEL_SET_BYTES}",
            hint="fewer or shorter labels",
        )


def _value(raw: Any, i: int) -> float:
    kind = type(raw)
    if kind is float:
        return raw
    if kind is int:
        return float(raw)
    if kind is str:
        special = _SPECIAL_VALUES.get(raw)
        if special is not None:
            return special
    # bool is an int subclass but never a sample value; `type() is` above already excludes it.
    raise invalid(
        f"samples[{i}].value",
        "value must be a number or one of the strings 'NaN', '+Inf', '-Inf'",
    )


def _timestamp(raw: Any, where: str, latest: float) -> float:
    kind = type(raw)
    if kind is not float and kind is not int:
        raise invalid(where, "must be a number of unix seconds")
    ts = float(raw)
    # 0 or negative means a broken agent clock; NaN/Inf cannot come out of orjson.
    if ts <= 0:
        raise invalid(where, "must be a positive number of unix seconds")
    if ts > latest:
        raise invalid(
            where,
            f"{ts} is too far in the future of the server clock",
            hint="check the agent's clock (NTP)",
        )
    return ts


def _report_id(raw: Any) -> uuid.UUID:
    if not isinstance(raw, str):
        raise invalid("report_id", "report_id must be a UUID string")
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise invalid("report_id", f"{raw[:64]!r} is not a UUID") from None


def parse_idempotency_key(raw: str) -> uuid.UUID:
    """The ``Idempotency-Key`` header is the report id, as a UUID."""
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        raise invalid("header.Idempotency-Key", "must be the report's UUID") from None


def _seq(raw: Any) -> int | None:
    if raw is None:
        return None
    if type(raw) is not int or not 0 <= raw <= MAX_SEQ:
        raise invalid("seq", "seq must be a non-negative integer")
    return raw


def _collectors(raw: Any) -> list[CollectorStatus]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid("collectors", "collectors must be an array")
    out = []
    for i, item in enumerate(raw):
        where = f"collectors[{i}]"
        if not isinstance(item, dict):
            raise invalid(where, "a collector status must be a JSON object")
        name = item.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or "\x00" in name:
            raise invalid(f"{where}.name", f"1 to {MAX_NAME} characters without NUL")
        ok = item.get("ok")
        if not isinstance(ok, bool):
            raise invalid(f"{where}.ok", "ok must be true or false")
        duration = item.get("duration_s")
        if duration is not None and (type(duration) not in (int, float) or duration < 0):
            raise invalid(f"{where}.duration_s", "duration_s must be a non-negative number")
        count = item.get("samples")
        if count is not None and (type(count) is not int or count < 0):
            raise invalid(f"{where}.samples", "samples must be a non-negative integer")
        error = item.get("error")
        if error is not None and not isinstance(error, str):
            raise invalid(f"{where}.error", "error must be a string or null")
        out.append(
            CollectorStatus(name, ok, None if duration is None else float(duration), count, error)
        )
    return out


def check_agent_id(raw: Any, where: str) -> str:
    """Agent ids as the agent config allows them (they also appear in URLs)."""
    if not isinstance(raw, str) or AGENT_ID.fullmatch(raw) is None:
        raise invalid(where, "agent_id must be 1-128 characters of [A-Za-z0-9._-]")
    return raw
