"""The API's parameters, read through the validation seam; pure.

Parameters come from the query string or, for POST, a form-encoded body (Prometheus merges the
two). Unknown parameters are ignored as Prometheus ignores them: Grafana and KEDA add their own.
Times are unix seconds or RFC 3339; ``step``, ``timeout`` and ``lookback_delta`` are float
seconds or durations (``15s``, ``1h30m``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from multidict import MultiDict, MultiMapping
from pydantic import BeforeValidator, ConfigDict, Field

from control_plane.promapi.errors import bad_data
from haetae.web.validation import (
    MAX_NAME,
    Model,
    Text,
    UnixTime,
    parse_duration_s,
    query_dict,
    validate,
)

# Prometheus's own bound: at most 11,000 points per series in a range query.
MAX_STEPS = 11_000
MAX_QUERY = 16 * 1024
MAX_MATCH = 32
MAX_LIMIT = 1_000_000

Seconds = Annotated[float, BeforeValidator(parse_duration_s)]
# A zero timeout would time every query out: refused instead (never a 503 for bad input).
Timeout = Annotated[float, BeforeValidator(parse_duration_s), Field(gt=0)]
Query = Annotated[str, Text(MAX_QUERY, min_length=1)]
Selector = Annotated[str, Text(4096, min_length=1)]
Limit = Annotated[int, Field(ge=0, le=MAX_LIMIT)]


class _Params(Model):
    # Prometheus ignores what it does not know; clients depend on that.
    model_config = ConfigDict(extra="ignore", frozen=True)


class InstantParams(_Params):
    query: Query
    time: UnixTime | None = None
    timeout: Timeout | None = None
    lookback_delta: Seconds | None = None
    limit: Limit = 0


class RangeParams(_Params):
    query: Query
    start: UnixTime
    end: UnixTime
    step: Seconds
    timeout: Timeout | None = None
    lookback_delta: Seconds | None = None
    limit: Limit = 0


class SeriesParams(_Params):
    match: Annotated[list[Selector], Field(alias="match[]", max_length=MAX_MATCH)] = []
    start: UnixTime | None = None
    end: UnixTime | None = None
    limit: Limit = 0


class MetadataParams(_Params):
    metric: Annotated[str, Text(MAX_NAME)] | None = None
    limit: Limit = 0
    limit_per_metric: Limit = 0


@dataclass(frozen=True)
class RangeQuery:
    query: str
    start: float
    end: float
    step: float
    timeout_s: float | None
    lookback_s: float | None
    limit: int

    @property
    def steps(self) -> int:
        return math.floor((self.end - self.start) / self.step + 1e-9) + 1

    def instants(self) -> list[float]:
        """start, start + step, ... <= end, in whole milliseconds as Prometheus counts them."""
        start_ms, step_ms = round(self.start * 1000), round(self.step * 1000)
        return [(start_ms + i * step_ms) / 1000 for i in range(self.steps)]


def read_instant(params: MultiMapping[str], *, now: float) -> tuple[InstantParams, float]:
    p = validate(InstantParams, query_dict(params, InstantParams), where="query")
    at = now if p.time is None else p.time
    return p, _ms(at)


def read_range(params: MultiMapping[str]) -> RangeQuery:
    p = validate(RangeParams, query_dict(params, RangeParams), where="query")
    start, end = _ms(p.start), _ms(p.end)
    if end < start:
        raise bad_data('invalid parameter "end": end timestamp must not be before start time')
    step = round(p.step * 1000) / 1000
    if step <= 0:
        raise bad_data(
            'invalid parameter "step": zero or negative query resolution step widths are not '
            "accepted. Try a positive integer"
        )
    if (end - start) / step > MAX_STEPS:
        raise bad_data(
            f"exceeded maximum resolution of {MAX_STEPS:,} points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )
    return RangeQuery(p.query, start, end, step, p.timeout, p.lookback_delta, p.limit)


def read_series(params: MultiMapping[str]) -> SeriesParams:
    # ``match[]`` is the wire name (an alias), which the seam's list detection cannot see.
    rest: MultiDict[str] = MultiDict((k, v) for k, v in params.items() if k != "match[]")
    data = query_dict(rest, SeriesParams)
    data["match[]"] = params.getall("match[]", [])
    return validate(SeriesParams, data, where="query")


def read_metadata(params: MultiMapping[str]) -> MetadataParams:
    return validate(MetadataParams, query_dict(params, MetadataParams), where="query")


def merged(query: MultiMapping[str], form: MultiMapping[str] | None) -> MultiDict[str]:
    """The query string and a POST form together (a key in both: all values, form last)."""
    out: MultiDict[str] = MultiDict(query)
    if form is not None:
        out.extend(form)
    return out


def _ms(t: float) -> float:
    # Prometheus keeps times as integer milliseconds.
    return math.floor(t * 1000 + 0.5) / 1000
