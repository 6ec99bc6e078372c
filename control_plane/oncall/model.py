"""People and on-call schedules: the records, and their validation from JSON (the admin API's
and the database's shape). Pure: no I/O.

A person has contact methods (Slack user id, a phone for SMS, a phone for KakaoTalk AlimTalk,
an email address) and notification rules: which contact method, after how long (Slack DM now,
SMS after 5 minutes if nobody has acknowledged). A schedule has rotation layers: participants
in order, a rotation length, a handoff time, an optional end and restrictions (daily or weekly
windows in the schedule's time zone); later layers override earlier ones, and overrides (one
person covers a shift) override every layer.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from haetae.web.validation import parse_duration_s, parse_unix_time

ContactType = Literal["slack", "sms", "alimtalk", "email"]
CONTACT_TYPES: tuple[str, ...] = get_args(ContactType)
# Patterns are used with fullmatch: "$" alone would let a trailing newline through.
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
MAX_ID = 64
_PHONE = re.compile(r"\+?[0-9]{7,16}")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
_EMAIL = re.compile(r"[^@\s\x00]{1,64}@[^@\s\x00]{1,255}")
_TIME_OF_DAY = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
MAX_ADDRESS = 320
MAX_TIMEZONE = 64
MAX_CONTACT_METHODS = 20
MAX_NOTIFICATION_RULES = 20
MAX_RESTRICTIONS = 14
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROTATIONS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400}
MIN_ROTATION_S = 3600
MAX_LAYERS = 10
MAX_PARTICIPANTS = 100


# People's outbox destinations: one per contact-method type, "@people/<type>/0" ('@' is
# reserved: no receiver is named so).
PEOPLE = "@people"


def people_destination(kind: str) -> str:
    return f"{PEOPLE}/{kind}/0"


class OncallInputError(ValueError):
    """One input field is wrong; ``field`` names it (``layers[0].users[1]``)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class ContactMethod:
    type: str
    address: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "address": self.address}


@dataclass(frozen=True)
class NotificationRule:
    contact: int  # index into the user's contact methods
    delay_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"contact": self.contact, "delay_s": self.delay_s}


@dataclass(frozen=True)
class User:
    id: str
    name: str
    timezone: str = "UTC"
    contact_methods: tuple[ContactMethod, ...] = ()
    notification_rules: tuple[NotificationRule, ...] = ()

    def plan(self) -> list[tuple[ContactMethod, float]]:
        """(contact method, delay) in order; without rules: every contact method, now."""
        if not self.notification_rules:
            return [(c, 0.0) for c in self.contact_methods]
        return [(self.contact_methods[r.contact], r.delay_s) for r in self.notification_rules]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "timezone": self.timezone,
            "contact_methods": [c.to_json() for c in self.contact_methods],
            "notification_rules": [r.to_json() for r in self.notification_rules],
        }


@dataclass(frozen=True)
class Restriction:
    """A window someone in the layer is on call: ``daily`` from ``start_minute`` (minutes after
    local midnight) for ``duration_s``, or ``weekly`` from that time on ISO ``day`` (1 = Monday)."""

    type: str
    start_minute: int
    duration_s: int
    day: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "start": f"{self.start_minute // 60:02d}:{self.start_minute % 60:02d}",
            "duration_s": self.duration_s,
        }
        if self.day is not None:
            out["day"] = _DAYS[self.day - 1]
        return out


@dataclass(frozen=True)
class Layer:
    name: str
    start: int  # unix seconds: the first handoff
    rotation_s: int
    users: tuple[str, ...]
    end: int | None = None
    restrictions: tuple[Restriction, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start": iso(self.start),
            "rotation_s": self.rotation_s,
            "users": list(self.users),
            "end": None if self.end is None else iso(self.end),
            "restrictions": [r.to_json() for r in self.restrictions],
        }


@dataclass(frozen=True)
class Override:
    id: int
    user_id: str
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user_id, "start": iso(self.start), "end": iso(self.end)}


@dataclass(frozen=True)
class Schedule:
    id: str
    name: str
    timezone: str = "UTC"
    layers: tuple[Layer, ...] = ()

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def user_ids(self) -> set[str]:
        return {u for layer in self.layers for u in layer.users}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "timezone": self.timezone,
            "layers": [layer.to_json() for layer in self.layers],
        }


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


# --- parsing -------------------------------------------------------------------------------


def parse_user(body: Any, *, user_id: str | None = None) -> User:
    """A user from the API's JSON (``user_id`` from the path on update)."""
    obj = _object(body, "body", {"id", "name", "timezone", "contact_methods", "notification_rules"})
    uid = _id(obj.get("id", user_id), "id")
    if user_id is not None and uid != user_id:
        raise OncallInputError("id", "differs from the id in the path")
    name = _text(obj.get("name", uid), "name", 200)
    timezone = _timezone(obj.get("timezone", "UTC"), "timezone")
    raw_methods = _list(obj.get("contact_methods", []), "contact_methods", MAX_CONTACT_METHODS)
    methods = tuple(_contact(m, f"contact_methods[{i}]") for i, m in enumerate(raw_methods))
    raw_rules = _list(
        obj.get("notification_rules", []), "notification_rules", MAX_NOTIFICATION_RULES
    )
    rules = []
    for i, r in enumerate(raw_rules):
        where = f"notification_rules[{i}]"
        rule = _object(r, where, {"contact", "delay_s", "delay"})
        contact = rule.get("contact")
        if isinstance(contact, bool) or not isinstance(contact, int):
            raise OncallInputError(f"{where}.contact", "the index of a contact method")
        if not 0 <= contact < len(methods):
            raise OncallInputError(
                f"{where}.contact", f"no contact method {contact} (the user has {len(methods)})"
            )
        delay = _duration(rule.get("delay_s", rule.get("delay", 0)), f"{where}.delay_s")
        if delay > 86400:
            raise OncallInputError(f"{where}.delay_s", "at most a day")
        rules.append(NotificationRule(contact, delay))
    return User(uid, name, timezone, methods, tuple(rules))


def parse_schedule(body: Any, *, schedule_id: str | None = None) -> Schedule:
    obj = _object(body, "body", {"id", "name", "timezone", "layers"})
    sid = _id(obj.get("id", schedule_id), "id")
    if schedule_id is not None and sid != schedule_id:
        raise OncallInputError("id", "differs from the id in the path")
    name = _text(obj.get("name", sid), "name", 200)
    timezone = _timezone(obj.get("timezone", "UTC"), "timezone")
    raw_layers = _list(obj.get("layers"), "layers", MAX_LAYERS, min_items=1)
    layers = tuple(_layer(raw, f"layers[{i}]") for i, raw in enumerate(raw_layers))
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise OncallInputError("layers", "layer names must be unique")
    return Schedule(sid, name, timezone, layers)


def parse_override(body: Any) -> tuple[str, float, float]:
    obj = _object(body, "body", {"user", "start", "end"})
    user = _id(obj.get("user"), "user")
    start = parse_instant(obj.get("start"), "start")
    end = parse_instant(obj.get("end"), "end")
    if end <= start:
        raise OncallInputError("end", "an override ends after it starts")
    if end - start > 366 * 86400:
        raise OncallInputError("end", "an override lasts at most a year")
    return user, start, end


def parse_instant(value: Any, where: str) -> float:
    """Unix seconds or an RFC 3339 time with a zone, between 1970 and 9999 (the seam's
    bounds: what datetime, iso() and PostgreSQL all hold)."""
    try:
        return parse_unix_time(value)
    except ValueError as exc:
        raise OncallInputError(where, f"{exc} (e.g. 2026-11-02T09:00:00Z)") from None


def user_from_row(row: Mapping[str, Any]) -> User:
    return User(
        row["user_id"],
        row["name"],
        row["timezone"],
        tuple(ContactMethod(c["type"], c["address"]) for c in row["contact_methods"]),
        tuple(NotificationRule(r["contact"], r["delay_s"]) for r in row["notification_rules"]),
    )


def schedule_from_row(row: Mapping[str, Any]) -> Schedule:
    return parse_schedule(
        {
            "id": row["schedule_id"],
            "name": row["name"],
            "timezone": row["timezone"],
            "layers": row["layers"],
        }
    )


def _layer(raw: Any, where: str) -> Layer:
    obj = _object(
        raw, where, {"name", "start", "rotation", "rotation_s", "users", "end", "restrictions"}
    )
    name = _text(obj.get("name"), f"{where}.name", 100)
    start = math.floor(parse_instant(obj.get("start"), f"{where}.start"))
    rotation = obj.get("rotation_s", obj.get("rotation"))
    if isinstance(rotation, str) and rotation in ROTATIONS:
        rotation_s = ROTATIONS[rotation]
    else:
        seconds = _duration(rotation, f"{where}.rotation_s")
        if seconds != int(seconds) or seconds < MIN_ROTATION_S:
            raise OncallInputError(
                f"{where}.rotation_s",
                f"whole seconds, at least {MIN_ROTATION_S} (or hourly, daily, weekly)",
            )
        rotation_s = int(seconds)
    raw_users = _list(obj.get("users"), f"{where}.users", MAX_PARTICIPANTS, min_items=1)
    users = tuple(_id(u, f"{where}.users[{i}]") for i, u in enumerate(raw_users))
    end = None
    if obj.get("end") is not None:
        end = math.floor(parse_instant(obj["end"], f"{where}.end"))
        if end <= start:
            raise OncallInputError(f"{where}.end", "a layer ends after it starts")
    raw_restrictions = _list(obj.get("restrictions", []), f"{where}.restrictions", MAX_RESTRICTIONS)
    restrictions = tuple(
        _restriction(r, f"{where}.restrictions[{i}]") for i, r in enumerate(raw_restrictions)
    )
    return Layer(name, start, rotation_s, users, end, restrictions)


def _restriction(raw: Any, where: str) -> Restriction:
    obj = _object(raw, where, {"type", "start", "duration_s", "duration", "day"})
    kind = obj.get("type")
    if kind not in ("daily", "weekly"):
        raise OncallInputError(f"{where}.type", "daily or weekly")
    start = obj.get("start")
    m = _TIME_OF_DAY.fullmatch(start) if isinstance(start, str) else None
    if m is None:
        raise OncallInputError(f"{where}.start", "a local time of day like 09:00")
    duration = _duration(obj.get("duration_s", obj.get("duration")), f"{where}.duration_s")
    longest = 86400 if kind == "daily" else 7 * 86400
    if duration != int(duration) or not 60 <= duration <= longest:
        raise OncallInputError(
            f"{where}.duration_s", f"whole seconds from 60 to {longest} for a {kind} window"
        )
    day = None
    if kind == "weekly":
        raw_day = obj.get("day")
        if not isinstance(raw_day, str) or raw_day.lower()[:3] not in _DAYS:
            raise OncallInputError(f"{where}.day", "a day of the week (mon ... sun)")
        day = _DAYS.index(raw_day.lower()[:3]) + 1
    elif "day" in obj:
        raise OncallInputError(f"{where}.day", "only weekly windows have a day")
    return Restriction(kind, int(m[1]) * 60 + int(m[2]), int(duration), day)


def _contact(raw: Any, where: str) -> ContactMethod:
    obj = _object(raw, where, {"type", "address"})
    kind = obj.get("type")
    if kind not in CONTACT_TYPES:
        raise OncallInputError(f"{where}.type", f"one of {', '.join(CONTACT_TYPES)}")
    address = obj.get("address")
    if not isinstance(address, str) or len(address) > MAX_ADDRESS:
        raise OncallInputError(f"{where}.address", f"a string of at most {MAX_ADDRESS} characters")
    address = address.strip()
    pattern, what = {
        "slack": (_SLACK_USER, "a Slack user id like U012AB3CD"),
        "sms": (_PHONE, "a phone number like +821012345678"),
        "alimtalk": (_PHONE, "a phone number like 01012345678"),
        "email": (_EMAIL, "an email address"),
    }[kind]
    if not pattern.fullmatch(address):
        raise OncallInputError(f"{where}.address", what)
    return ContactMethod(kind, address)


def _object(raw: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise OncallInputError(where, "a JSON object")
    unknown = sorted(set(raw) - keys)
    if unknown:
        prefix = "" if where == "body" else f"{where}."
        raise OncallInputError(f"{prefix}{unknown[0]}", "unknown key")
    return raw


def _list(raw: Any, where: str, most: int, *, min_items: int = 0) -> Sequence[Any]:
    if not isinstance(raw, list) or not min_items <= len(raw) <= most:
        raise OncallInputError(where, f"a list of {min_items}-{most} items")
    return raw


def _id(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not ID_PATTERN.fullmatch(raw):
        raise OncallInputError(where, "an id: lowercase letters, digits, '.', '_', '-' (1-64)")
    return raw


def _text(raw: Any, where: str, most: int) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > most or "\x00" in raw:
        raise OncallInputError(where, f"a text of 1-{most} characters without NUL")
    return raw.strip()


def _timezone(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or len(raw) > MAX_TIMEZONE or "\x00" in raw:
        raise OncallInputError(where, "an IANA time zone like UTC or Asia/Seoul")
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise OncallInputError(where, "an IANA time zone like UTC or Asia/Seoul") from None
    return raw


def _duration(raw: Any, where: str) -> float:
    """Seconds, or ``30m``, ``12h``, ``1d``: at most ten years (the seam's bound), so a
    rotation always fits PostgreSQL's bigint and Python's datetime."""
    try:
        return parse_duration_s(raw.strip() if isinstance(raw, str) else raw)
    except ValueError as exc:
        raise OncallInputError(where, f"{exc} (e.g. 30m, 12h, 1d)") from None
