"""Who is on call: rotation handoffs, layers overriding layers (one starting in the future, one
ending), restriction windows (UTC, a zone without DST and one with it), overrides, and the
rendered shift list agreeing with the instant answer everywhere. Plus the input validation of
people, schedules and escalation targets."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from control_plane.config import (
    EscalationLevelConfig,
    EscalationPolicyConfig,
    NotifyConfig,
    ReceiverConfig,
    WebhookChannelConfig,
)
from control_plane.oncall.model import (
    OncallInputError,
    Override,
    Schedule,
    parse_override,
    parse_schedule,
    parse_user,
)
from control_plane.oncall.schedule import oncall_at, shifts

H = 3600
D = 86400


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


MON = ts("2026-11-02T09:00:00+00:00")  # a Monday


def schedule(*layers: dict[str, Any], timezone: str = "UTC") -> Schedule:
    return parse_schedule({"id": "primary", "timezone": timezone, "layers": list(layers)})


def layer(name: str, users: list[str], **kw: Any) -> dict[str, Any]:
    return {
        "name": name,
        "start": kw.pop("start", "2026-11-02T09:00:00Z"),
        "rotation": kw.pop("rotation", "weekly"),
        "users": users,
        **kw,
    }


def who(s: Schedule, t: float, overrides: list[Override] | None = None) -> str | None:
    found = oncall_at(s, overrides or [], t)
    return None if found is None else found.user_id


def test_weekly_rotation_hands_off_at_the_start_time() -> None:
    s = schedule(layer("weekly", ["alice", "bob", "carol"]))
    assert who(s, MON - 1) is None  # before the layer starts
    assert who(s, MON) == "alice"
    assert who(s, MON + 7 * D - 1) == "alice"
    assert who(s, MON + 7 * D) == "bob"  # the handoff instant belongs to the next person
    assert who(s, MON + 14 * D + 3 * H) == "carol"
    assert who(s, MON + 21 * D) == "alice"  # around again
    assert who(s, MON + 1000 * 7 * D) == ["alice", "bob", "carol"][1000 % 3]


def test_rotation_lengths_as_names_durations_and_seconds() -> None:
    for rotation, length in (("daily", D), ("12h", 12 * H), (6 * H, 6 * H), ("hourly", H)):
        s = schedule(layer("l", ["a", "b"], rotation=rotation))
        assert s.layers[0].rotation_s == length
        assert who(s, MON + length - 1) == "a" and who(s, MON + length) == "b"


def test_a_later_layer_overrides_from_its_future_start_and_until_its_end() -> None:
    s = schedule(
        layer("base", ["alice", "bob"]),
        layer(
            "cover",
            ["carol"],
            start="2026-11-05T00:00:00Z",
            end="2026-11-07T00:00:00Z",
            rotation="daily",
        ),
    )
    assert who(s, ts("2026-11-04T23:59:59+00:00")) == "alice"  # cover not started yet
    assert who(s, ts("2026-11-05T00:00:00+00:00")) == "carol"
    assert who(s, ts("2026-11-06T23:59:59+00:00")) == "carol"
    assert who(s, ts("2026-11-07T00:00:00+00:00")) == "alice"  # cover ended
    assert oncall_at(s, [], ts("2026-11-05T12:00:00+00:00")).layer == "cover"  # type: ignore[union-attr]


def test_daily_restriction_falls_through_to_the_layer_below() -> None:
    s = schedule(
        layer("nights", ["night"], rotation="weekly"),
        layer(
            "office",
            ["day1", "day2"],
            rotation="daily",
            restrictions=[{"type": "daily", "start": "09:00", "duration_s": 9 * H}],
        ),
    )
    tue = MON + D  # Tuesday 09:00 UTC: day2's turn
    assert who(s, tue - 1) == "night"
    assert who(s, tue) == "day2"
    assert who(s, tue + 9 * H - 1) == "day2"
    assert who(s, tue + 9 * H) == "night"


def test_weekly_restriction_across_midnight_and_the_week() -> None:
    weekend = {"type": "weekly", "day": "fri", "start": "18:00", "duration_s": 63 * H}
    s = schedule(
        layer("week", ["weekday"]),
        layer("weekend", ["sat"], restrictions=[weekend]),
    )
    fri_18 = ts("2026-11-06T18:00:00+00:00")
    assert who(s, fri_18 - 1) == "weekday"
    assert who(s, fri_18) == "sat"
    assert who(s, ts("2026-11-08T23:00:00+00:00")) == "sat"  # Sunday night
    assert who(s, fri_18 + 63 * H) == "weekday"  # Monday 09:00
    assert who(s, fri_18 + 7 * D + 1) == "sat"  # the next weekend


def test_restrictions_are_local_times_in_the_schedules_zone() -> None:
    office = {"type": "daily", "start": "09:00", "duration_s": 9 * H}
    seoul = schedule(layer("l", ["kim"], restrictions=[office]), timezone="Asia/Seoul")
    # 09:00 KST is 00:00 UTC (no DST in Korea).
    assert who(seoul, ts("2026-11-03T00:00:00+00:00")) == "kim"
    assert who(seoul, ts("2026-11-02T23:59:59+00:00")) is None
    assert who(seoul, ts("2026-11-03T09:00:00+00:00")) is None
    ny = schedule(
        layer("l", ["sam"], start="2026-10-01T00:00:00Z", restrictions=[office]),
        timezone="America/New_York",
    )
    # 09:00 in New York: 13:00 UTC in summer time, 14:00 UTC after 2026-11-01.
    assert who(ny, ts("2026-10-30T13:00:00+00:00")) == "sam"
    assert who(ny, ts("2026-11-03T13:30:00+00:00")) is None
    assert who(ny, ts("2026-11-03T14:00:00+00:00")) == "sam"


def test_rotation_is_a_fixed_length_in_utc_whatever_the_zone() -> None:
    s = schedule(layer("l", ["a", "b"], rotation="daily"), timezone="America/New_York")
    # The DST change on 2026-11-01 does not move the 09:00 UTC handoff.
    assert who(s, ts("2026-11-02T08:59:59+00:00")) is None
    assert who(s, ts("2026-11-03T08:59:59+00:00")) == "a"
    assert who(s, ts("2026-11-03T09:00:00+00:00")) == "b"


def test_overrides_win_and_the_latest_one_wins_where_they_overlap() -> None:
    s = schedule(layer("weekly", ["alice", "bob"]))
    first = Override(1, "carol", MON + 2 * H, MON + 5 * H)
    later = Override(2, "dave", MON + 4 * H, MON + 6 * H)
    assert who(s, MON + H, [first, later]) == "alice"
    assert who(s, MON + 2 * H, [first, later]) == "carol"
    assert who(s, MON + 4 * H, [first, later]) == "dave"
    assert who(s, MON + 5 * H + 1, [first, later]) == "dave"
    assert who(s, MON + 6 * H, [first, later]) == "alice"  # the end is exclusive
    o = oncall_at(s, [first], MON + 3 * H)
    assert o is not None and o.source == "override" and o.override_id == 1


def test_shifts_render_handoffs_overrides_and_gaps() -> None:
    s = schedule(
        layer(
            "daily",
            ["a", "b"],
            rotation="daily",
            restrictions=[{"type": "daily", "start": "09:00", "duration_s": 12 * H}],
        ),
    )
    cover = Override(7, "z", MON + D + 2 * H, MON + D + 4 * H)
    out = shifts(s, [cover], MON - H, MON + 2 * D)
    assert [(x.start - MON, x.end - MON, x.who.user_id, x.who.source) for x in out] == [
        (0, 12 * H, "a", "layer"),
        (D, D + 2 * H, "b", "layer"),
        (D + 2 * H, D + 4 * H, "z", "override"),
        (D + 4 * H, D + 12 * H, "b", "layer"),
    ]
    assert out[0].to_json()["start"] == "2026-11-02T09:00:00Z"


def test_shifts_merge_a_person_following_themselves() -> None:
    s = schedule(layer("solo", ["only"], rotation="daily"))
    (one,) = shifts(s, [], MON, MON + 10 * D)
    assert (one.start, one.end, one.who.user_id) == (MON, MON + 10 * D, "only")


def test_shifts_agree_with_the_instant_answer_everywhere() -> None:
    s = schedule(
        layer("base", ["a", "b", "c"], rotation="daily"),
        layer(
            "biz",
            ["d", "e"],
            start="2026-11-04T00:00:00Z",
            rotation="weekly",
            restrictions=[
                {"type": "weekly", "day": "tue", "start": "10:30", "duration_s": 30 * H},
                {"type": "daily", "start": "22:00", "duration_s": 4 * H},
            ],
        ),
        timezone="Asia/Seoul",
    )
    overrides = [
        Override(1, "x", MON + 30 * H, MON + 33 * H),
        Override(2, "y", MON + 32 * H, MON + 80 * H),
    ]
    since, until = MON - 2 * D, MON + 20 * D
    rendered = shifts(s, overrides, since, until)
    for a, b in itertools.pairwise(rendered):
        assert a.end <= b.start and (a.end < b.start or a.who != b.who)
    t = since
    while t < until:
        expect = oncall_at(s, overrides, t)
        got = [x.who for x in rendered if x.start <= t < x.end]
        assert got == ([] if expect is None else [expect]), t
        t += 1789  # not a divisor of any period: lands everywhere


def test_long_ranges_are_refused() -> None:
    s = schedule(layer("l", ["a"]))
    with pytest.raises(ValueError, match="at most"):
        shifts(s, [], MON, MON + 400 * D)
    assert shifts(s, [], MON, MON) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "p", "layers": []}, "layers"),
        ({"id": "P!", "layers": [layer("l", ["a"])]}, "id"),
        ({"id": "p", "layers": [layer("l", ["a", "B C"])]}, "layers[0].users[1]"),
        ({"id": "p", "layers": [layer("l", ["a"], rotation="10m")]}, "layers[0].rotation_s"),
        ({"id": "p", "layers": [layer("l", ["a"], start="tomorrow")]}, "layers[0].start"),
        ({"id": "p", "layers": [layer("l", ["a"], end="2026-01-01T00:00:00Z")]}, "layers[0].end"),
        ({"id": "p", "timezone": "Mars/Olympus", "layers": [layer("l", ["a"])]}, "timezone"),
        ({"id": "p", "layers": [layer("l", ["a"], colour="red")]}, "layers[0].colour"),
        ({"id": "p", "layers": [layer("l", ["a"]), layer("l", ["b"])]}, "layers"),
        (
            {
                "id": "p",
                "layers": [
                    layer(
                        "l",
                        ["a"],
                        restrictions=[{"type": "weekly", "start": "09:00", "duration_s": 3600}],
                    )
                ],
            },
            "layers[0].restrictions[0].day",
        ),
        (
            {
                "id": "p",
                "layers": [
                    layer(
                        "l",
                        ["a"],
                        restrictions=[{"type": "daily", "start": "25:00", "duration_s": 3600}],
                    )
                ],
            },
            "layers[0].restrictions[0].start",
        ),
    ],
)
def test_bad_schedules_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(OncallInputError) as err:
        parse_schedule(body)
    assert err.value.field == field


def test_schedule_round_trips_through_json() -> None:
    s = schedule(
        layer(
            "l",
            ["a"],
            end="2027-01-01T00:00:00Z",
            restrictions=[
                {"type": "weekly", "day": "Friday", "start": "18:30", "duration_s": 7200}
            ],
        ),
    )
    assert parse_schedule(s.to_json()) == s
    assert s.to_json()["layers"][0]["restrictions"][0]["day"] == "fri"


def test_users_contact_methods_and_rules() -> None:
    user = parse_user(
        {
            "id": "alice",
            "name": "Alice Kim",
            "timezone": "Asia/Seoul",
            "contact_methods": [
                {"type": "slack", "address": "U012AB3CD"},
                {"type": "sms", "address": "+821012345678"},
                {"type": "email", "address": "alice@example.org"},
            ],
            "notification_rules": [{"contact": 0}, {"contact": 1, "delay_s": "5m"}],
        }
    )
    assert [(c.type, d) for c, d in user.plan()] == [("slack", 0.0), ("sms", 300.0)]
    bare = parse_user(
        {"id": "bob", "contact_methods": [{"type": "alimtalk", "address": "01012345678"}]}
    )
    assert bare.name == "bob" and [(c.type, d) for c, d in bare.plan()] == [("alimtalk", 0.0)]
    assert parse_user(user.to_json()) == user


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"id": "a", "contact_methods": [{"type": "pager", "address": "1"}]},
            "contact_methods[0].type",
        ),
        (
            {"id": "a", "contact_methods": [{"type": "sms", "address": "call me"}]},
            "contact_methods[0].address",
        ),
        (
            {"id": "a", "contact_methods": [{"type": "slack", "address": "#general"}]},
            "contact_methods[0].address",
        ),
        ({"id": "a", "notification_rules": [{"contact": 0}]}, "notification_rules[0].contact"),
        (
            {
                "id": "a",
                "contact_methods": [{"type": "email", "address": "a@b.c"}],
                "notification_rules": [{"contact": 0, "delay_s": -1}],
            },
            "notification_rules[0].delay_s",
        ),
        ({"name": "no id"}, "id"),
        ({"id": "a", "phone": "1"}, "phone"),
    ],
)
def test_bad_users_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(OncallInputError) as err:
        parse_user(body)
    assert err.value.field == field


def test_user_id_in_the_path_must_match() -> None:
    with pytest.raises(OncallInputError) as err:
        parse_user({"id": "bob"}, user_id="alice")
    assert err.value.field == "id"
    assert parse_user({"name": "Alice"}, user_id="alice").id == "alice"


def test_overrides_parse() -> None:
    assert parse_override({"user": "a", "start": MON, "end": "2026-11-02T10:00:00Z"}) == (
        "a",
        MON,
        MON + H,
    )
    with pytest.raises(OncallInputError) as err:
        parse_override({"user": "a", "start": MON, "end": MON})
    assert err.value.field == "end"


def test_escalation_targets_in_config() -> None:
    level = EscalationLevelConfig(
        receivers=["ops"], targets=["schedule:primary", "user:alice", "receiver:phones"]
    )
    assert level.parsed_targets() == [
        ("receiver", "ops"),
        ("schedule", "primary"),
        ("user", "alice"),
        ("receiver", "phones"),
    ]
    assert level.receiver_names == ["ops", "phones"]
    with pytest.raises(ValidationError, match="use receiver:<name>"):
        EscalationLevelConfig(targets=["team:x"])
    with pytest.raises(ValidationError, match="receivers or targets"):
        EscalationLevelConfig()
    hook = [WebhookChannelConfig(url="http://127.0.0.1:1/")]
    with pytest.raises(ValidationError, match="unknown receiver 'nope'"):
        NotifyConfig(
            receivers=[ReceiverConfig(name="ops", webhook=hook)],
            escalation_policies=[
                EscalationPolicyConfig(
                    name="p", levels=[EscalationLevelConfig(targets=["receiver:nope"])]
                )
            ],
        )
    with pytest.raises(ValidationError, match="reserved"):
        NotifyConfig(receivers=[ReceiverConfig(name="@people", webhook=hook)])
