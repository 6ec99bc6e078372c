"""The on-call admin API's request shapes, bounded through the validation seam
(:mod:`haetae.web.validation`): ids, names, addresses and time zones without NUL and within
their lengths, instants between 1970 and 9999, durations within ten years, lists bounded.

The route reads a body with one of these models (a 400 naming ``body.<field>``), then hands
the validated mapping to :mod:`control_plane.oncall.model`, which decides what the fields mean
(contact address formats, rotations, restrictions, cross-field rules) and also reads rows back
from the database.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from control_plane.oncall.model import (
    MAX_ADDRESS,
    MAX_CONTACT_METHODS,
    MAX_ID,
    MAX_LAYERS,
    MAX_NOTIFICATION_RULES,
    MAX_PARTICIPANTS,
    MAX_RESTRICTIONS,
    MAX_TIMEZONE,
    ROTATIONS,
    ContactType,
)
from haetae.web import validation

OncallId = Annotated[str, validation.Text(MAX_ID, min_length=1)]
PersonName = Annotated[str, validation.Text(200, min_length=1)]
LayerName = Annotated[str, validation.Text(100, min_length=1)]
Address = Annotated[str, validation.Text(MAX_ADDRESS)]
TimeZone = Annotated[str, validation.Text(MAX_TIMEZONE, min_length=1)]
TimeOfDay = Annotated[str, validation.Text(5)]
DayName = Annotated[str, validation.Text(16)]


def rotation_s(raw: Any) -> float:
    """``hourly``, ``daily``, ``weekly``, or a duration (ten years at most: bigint-safe)."""
    if isinstance(raw, str) and raw in ROTATIONS:
        return float(ROTATIONS[raw])
    try:
        return validation.parse_duration_s(raw)
    except ValueError:
        raise ValueError(
            "hourly, daily, weekly or a duration like 12h (at most ten years)"
        ) from None


Rotation = Annotated[float, BeforeValidator(rotation_s)]


class ContactRequest(validation.Model):
    type: ContactType
    address: Address


class NotificationRuleRequest(validation.Model):
    contact: Annotated[int, validation.IntRange(0, MAX_CONTACT_METHODS - 1)]
    delay_s: validation.Duration | None = None
    delay: validation.Duration | None = None


class UserRequest(validation.Model):
    id: OncallId | None = None
    name: PersonName | None = None
    timezone: TimeZone = "UTC"
    contact_methods: Annotated[list[ContactRequest], Field(max_length=MAX_CONTACT_METHODS)] = []
    notification_rules: Annotated[
        list[NotificationRuleRequest], Field(max_length=MAX_NOTIFICATION_RULES)
    ] = []


class RestrictionRequest(validation.Model):
    type: Literal["daily", "weekly"]
    start: TimeOfDay
    duration_s: validation.Duration | None = None
    duration: validation.Duration | None = None
    day: DayName | None = None


class LayerRequest(validation.Model):
    name: LayerName
    start: validation.UnixTime
    rotation: Rotation | None = None
    rotation_s: Rotation | None = None
    users: Annotated[list[OncallId], Field(min_length=1, max_length=MAX_PARTICIPANTS)]
    end: validation.UnixTime | None = None
    restrictions: Annotated[list[RestrictionRequest], Field(max_length=MAX_RESTRICTIONS)] = []


class ScheduleRequest(validation.Model):
    id: OncallId | None = None
    name: PersonName | None = None
    timezone: TimeZone = "UTC"
    layers: Annotated[list[LayerRequest], Field(min_length=1, max_length=MAX_LAYERS)]


class OverrideRequest(validation.Model):
    user: OncallId
    start: validation.UnixTime
    end: validation.UnixTime


class AtParams(validation.Model):
    at: validation.UnixTime | None = None


class RangeParams(validation.Model):
    since: validation.UnixTime | None = None
    until: validation.UnixTime | None = None


class NoParams(validation.Model):
    pass


def as_mapping(request: validation.Model) -> dict[str, Any]:
    """The validated request in the model's JSON shape (instants and durations as seconds)."""
    return request.model_dump(exclude_unset=True)
