"""The one request-validation seam: typed, bounded models for every route's body, query and path.

A handler declares what it accepts as a pydantic model built from the bounded types below, and
reads it with :func:`body`, :func:`query` or :func:`path`. Whatever PostgreSQL (or Python) would
refuse is refused here, with a 400 problem+json naming the field at fault (``body.labels.a``,
``query.since``, ``path.id``): NUL characters, strings past the lengths our indexes hold, numbers
and times out of range, enums given as lists, Unicode digits where an id is expected. So a bad
request never reaches the database and never becomes a 5xx.

The same models are what an OpenAPI document is generated from (``model_json_schema()``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from aiohttp import web
from multidict import MultiMapping
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
)
from pydantic_core import core_schema

from haetae.web.bodies import read_json
from haetae.web.bodies import require_json as require_json  # re-exported: part of the seam
from haetae.web.problem import ProblemError, invalid

M = TypeVar("M", bound=BaseModel)

# Bounds shared by every route. PostgreSQL's btree holds at most ~2,700 bytes per index row, so a
# string that is indexed (names, label values, matchers) stays well under it even in UTF-8.
MAX_NAME = 200
MAX_LABEL_NAME = 128
MAX_LABEL_VALUE = 1024
MAX_LABELS = 64
# A series' metric name, and its whole label set as stored (compact sorted JSON, in UTF-8 bytes):
# the series table's unique btree holds agent id (128) + name (256) + label set (2,048) plus
# tuple overhead, under the 2,704-byte maximum. Agents check the same bounds before sending.
MAX_METRIC_NAME = 256
MAX_LABEL_SET_BYTES = 2048
MAX_TEXT = 16 * 1024
# Unix seconds between 1970 and the end of year 9999: what Python's datetime and PostgreSQL's
# timestamptz both hold.
MAX_UNIX_S = 253_402_300_799.0
# Ten years: the longest duration (TTL, silence, `for`, offset) any route takes.
MAX_DURATION_S = 10 * 366 * 86400.0
MAX_ID = 2**63 - 1

LABEL_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ASCII_INT = re.compile(r"[0-9]{1,19}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 365 * 86400.0,
}


class Model(BaseModel):
    """Base of every request model: unknown fields are refused, enums compared by value."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False, frozen=True)


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


@dataclass(frozen=True, slots=True)
class Text:
    """A string PostgreSQL accepts: ``Annotated[str, Text(200)]`` is at most 200 characters, has
    no NUL, and may have a minimum length and a regex. A marker in ``Annotated`` (not a function
    that builds a type) so that mypy sees a ``str`` and pydantic sees the bounds."""

    max_length: int = MAX_TEXT
    min_length: int = 0
    pattern: str | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        bounded = core_schema.str_schema(
            min_length=self.min_length, max_length=self.max_length, pattern=self.pattern
        )
        return core_schema.no_info_after_validator_function(no_nul, bounded)


def IntRange(lo: int, hi: int) -> Any:
    """``Annotated[int, IntRange(1, 100)]``: a JSON integer (not a string, not a bool) in range."""
    return Field(ge=lo, le=hi, strict=True)


def FloatRange(lo: float, hi: float) -> Any:
    """``Annotated[float, FloatRange(0, 1)]``: a finite number in range."""
    return Field(ge=lo, le=hi, allow_inf_nan=False)


Name = Annotated[str, Text(MAX_NAME, min_length=1)]
LabelName = Annotated[str, Text(MAX_LABEL_NAME, min_length=1, pattern=LABEL_NAME_RE)]
LabelValue = Annotated[str, Text(MAX_LABEL_VALUE)]
Labels = Annotated[dict[LabelName, LabelValue], Field(max_length=MAX_LABELS)]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def parse_unix_time(raw: Any) -> float:
    """Unix seconds (a number or a numeric string) or an RFC 3339 time with a zone."""
    if isinstance(raw, bool):
        raise ValueError("unix seconds or an RFC 3339 time")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        no_nul(raw)
        try:
            value = float(raw)
        except ValueError:
            value = _rfc3339(raw)
    else:
        raise ValueError("unix seconds or an RFC 3339 time")
    if not math.isfinite(value) or not 0 <= value <= MAX_UNIX_S:
        raise ValueError("a time between 1970 and 9999 is required")
    return value


def _rfc3339(raw: str) -> float:
    if len(raw) > 64 or "T" not in raw.upper():
        raise ValueError("unix seconds or an RFC 3339 time like 2024-11-27T15:06:40Z")
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError("unix seconds or an RFC 3339 time like 2024-11-27T15:06:40Z") from None
    if when.tzinfo is None:
        raise ValueError("an RFC 3339 time needs a zone (Z or +09:00)")
    try:
        return when.timestamp()
    except (OverflowError, ValueError):
        raise ValueError("a time between 1970 and 9999 is required") from None


def parse_duration_s(raw: Any) -> float:
    """Seconds as a number, or ``500ms``, ``15s``, ``1h30m``, ``1d``, ``1w``, ``1y``."""
    if isinstance(raw, bool):
        raise ValueError("a duration like 15s, 1h30m or a number of seconds")
    if isinstance(raw, int | float):
        seconds = float(raw)
    elif isinstance(raw, str):
        seconds = _duration_text(raw)
    else:
        raise ValueError("a duration like 15s, 1h30m or a number of seconds")
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DURATION_S:
        raise ValueError("a duration between 0 and 10 years is required")
    return seconds


def _duration_text(raw: str) -> float:
    if len(raw) > 64:
        raise ValueError("a duration like 15s, 1h30m or a number of seconds")
    try:
        return float(raw)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(raw):
        if m.start() != pos:
            break
        total += float(m[1]) * _UNIT_S[m[2]]
        pos = m.end()
    if pos != len(raw) or pos == 0:
        raise ValueError("a duration like 15s, 1h30m or a number of seconds")
    return total


def parse_id(raw: Any) -> int:
    """A positive 64-bit id: ASCII digits only (``"²".isdigit()`` is true, ``int("²")`` fails)."""
    if isinstance(raw, bool):
        raise ValueError("a positive integer id")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _ASCII_INT.fullmatch(raw):
        value = int(raw)
    else:
        raise ValueError("a positive integer id")
    if not 1 <= value <= MAX_ID:
        raise ValueError("a positive integer id")
    return value


UnixTime = Annotated[float, BeforeValidator(parse_unix_time)]
Duration = Annotated[float, BeforeValidator(parse_duration_s)]
Id = Annotated[int, BeforeValidator(parse_id)]
Finite = Annotated[float, AfterValidator(_finite)]


# --- reading a request through a model ------------------------------------------------------


async def body(request: web.Request, model: type[M], *, max_bytes: int = 1024 * 1024) -> M:
    """The JSON body as ``model``: 415 unless JSON, 400 naming the field at fault."""
    raw = await read_json(request, max_bytes=max_bytes)
    return validate(model, raw, where="body")


def query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model``. A field typed as a list takes every value of its key;
    any other field may be given once."""
    return validate(model, query_dict(request.query, model), where="query")


def path(request: web.Request, model: type[M]) -> M:
    return validate(model, dict(request.match_info), where="path")


def path_id(request: web.Request, name: str = "id") -> int:
    """One integer id from the path, or a 400 naming it."""
    try:
        return parse_id(request.match_info[name])
    except ValueError as exc:
        raise invalid(f"path.{name}", str(exc)) from None


def path_text(request: web.Request, name: str, max_length: int = MAX_NAME) -> str:
    """One string from the path: no NUL, bounded, or a 400 naming it."""
    value = request.match_info[name]
    if "\x00" in value or not 1 <= len(value) <= max_length:
        raise invalid(f"path.{name}", f"1 to {max_length} characters without NUL")
    return value


def query_dict(params: MultiMapping[str], model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in set(params):
        values = params.getall(key)
        field = model.model_fields.get(key)
        if field is not None and _is_list(field.annotation):
            out[key] = list(values)
        elif len(values) > 1:
            raise invalid(f"query.{key[:64]}", f"{key[:64]!r} may be given only once")
        else:
            out[key] = values[0]
    return out


def _is_list(annotation: Any) -> bool:
    origin = getattr(annotation, "__origin__", None)
    if origin in (list, tuple):
        return True
    return any(_is_list(arg) for arg in getattr(annotation, "__args__", ()) or ())


def validate(model: type[M], data: Any, *, where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise problem_from(exc, where) from None


def problem_from(exc: ValidationError, where: str) -> ProblemError:
    """The first error of ``exc`` as a 400 naming its field (``body.matchers[2]``); with more than
    one, all of them (up to 20) under ``errors``."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0] if errors else {"loc": (), "msg": "invalid"}
    extra: dict[str, Any] = {}
    if len(errors) > 1:
        extra["errors"] = [
            {"field": _field(where, err["loc"]), "detail": _message(err)} for err in errors[:20]
        ]
    return ProblemError(
        400,
        "Invalid request",
        detail=_message(first),
        type_="invalid-field",
        field=_field(where, first["loc"]),
        extra=extra,
    )


def _field(where: str, loc: Any) -> str:
    return where + "".join(f"[{p}]" if isinstance(p, int) else f".{str(p)[:64]}" for p in loc)


def _message(error: Any) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    return str(error["msg"]).removeprefix("Value error, ")
