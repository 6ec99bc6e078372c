"""The on-call model's bounds (issue 9 s.2): instants, durations and texts the database, int64 or
datetime would refuse are OncallInputErrors naming the field, also when read without the API."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.oncall.model import OncallInputError, parse_override, parse_schedule, parse_user

LAYER = {"name": "l", "start": "2026-11-02T09:00:00Z", "rotation": "weekly", "users": ["a"]}


def schedule(**layer: Any) -> dict[str, Any]:
    return {"id": "s", "layers": [{**LAYER, **layer}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (schedule(start=1e15), "layers[0].start"),
        (schedule(start="0000-01-01T00:00:00Z"), "layers[0].start"),
        (schedule(end=1e308), "layers[0].end"),
        (schedule(rotation=2**64 - 1), "layers[0].rotation_s"),
        (schedule(rotation="99999999999d"), "layers[0].rotation_s"),
        (schedule(name="a\x00"), "layers[0].name"),
        (schedule(users=["a\n"]), "layers[0].users[0]"),  # "$" would have let it through
        ({**schedule(), "timezone": "UTC\x00"}, "timezone"),
        ({**schedule(), "timezone": "x" * 5000}, "timezone"),
    ],
)
def test_bad_schedules(body: dict[str, Any], field: str) -> None:
    with pytest.raises(OncallInputError) as err:
        parse_schedule(body)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "a", "name": "x\x00"}, "name"),
        ({"id": "a\n"}, "id"),
        (
            {"id": "a", "contact_methods": [{"type": "email", "address": "a\x00@b.c"}]},
            "contact_methods[0].address",
        ),
        (
            {"id": "a", "contact_methods": [{"type": "email", "address": "a@" + "b" * 400}]},
            "contact_methods[0].address",
        ),
    ],
)
def test_bad_users(body: dict[str, Any], field: str) -> None:
    with pytest.raises(OncallInputError) as err:
        parse_user(body)
    assert err.value.field == field


def test_override_instants_are_bounded() -> None:
    with pytest.raises(OncallInputError) as err:
        parse_override({"user": "a", "start": 1e308, "end": 1})
    assert err.value.field == "start"
    with pytest.raises(OncallInputError) as err:
        parse_override({"user": "a", "start": 0, "end": "10000-01-01T00:00:00Z"})
    assert err.value.field == "end"
