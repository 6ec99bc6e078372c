"""Monitoring query parameters: parsing, defaults and every 400 naming its parameter."""

from __future__ import annotations

import datetime as dt

import pytest
from multidict import MultiDict

from control_plane.config import AgentsConfig
from control_plane.query.agents import AgentState, agent_state
from control_plane.query.cursor import decode_cursor, encode_cursor
from control_plane.query.matchers import MatchOp, matches_all, parse_matcher
from control_plane.query.params import Agg, parse_duration, parse_metrics_query, parse_time
from haetae.web.problem import ProblemError

NOW = 1_732_720_000.0


def q(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


def test_defaults_are_the_last_hour_raw() -> None:
    mq = parse_metrics_query(q(("name", "cpu")), now=NOW)
    assert (mq.start, mq.end, mq.step, mq.agg, mq.limit, mq.after_series) == (
        NOW - 3600,
        NOW,
        None,
        Agg.AVG,
        100,
        0,
    )


def test_everything_given() -> None:
    mq = parse_metrics_query(
        q(
            ("name", "http_requests_total"),
            ("match", 'code=~"5.."'),
            ("match", "path!='/health'"),
            ("start", "2024-11-27T15:00:00Z"),
            ("end", "1732720000"),
            ("step", "1m30s"),
            ("agg", "max"),
            ("limit", "10"),
            ("cursor", encode_cursor(42)),
        ),
        now=NOW,
    )
    assert mq.start == dt.datetime(2024, 11, 27, 15, tzinfo=dt.UTC).timestamp()
    assert (mq.end, mq.step, mq.agg, mq.limit, mq.after_series) == (NOW, 90.0, Agg.MAX, 10, 42)
    assert [(m.label, m.op, m.value) for m in mq.matchers] == [
        ("code", MatchOp.RE, "5.."),
        ("path", MatchOp.NE, "/health"),
    ]
    assert mq.steps == 5  # 400 s / 90 s, rounded up


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15),
        ("1m", 60),
        ("1h", 3600),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1d", 86400),
        ("2w", 1_209_600),
        ("30", 30),
        ("2.5", 2.5),
        ("1.5m", 90),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "query.step") == seconds


@pytest.mark.parametrize("text", ["", "1x", "m", "1m1", "-5", "0", "0s", "1 m", "inf", "nan"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ProblemError) as err:
        parse_duration(text, "query.step")
    assert err.value.field == "query.step"


def test_times() -> None:
    assert parse_time("1732720000.5", "query.start") == 1732720000.5
    assert parse_time("2024-11-27T16:06:40+01:00", "q") == parse_time("2024-11-27T15:06:40Z", "q")
    for bad in ("2024-11-27T15:06:40", "2024-11-27", "yesterday", "-1", "inf"):
        with pytest.raises(ProblemError) as err:
            parse_time(bad, "query.start")
        assert err.value.field == "query.start"


BAD = [
    ("no name", [], "query.name"),
    ("bad name", [("name", "a-b")], "query.name"),
    ("two names", [("name", "a"), ("name", "b")], "query.name"),
    ("unknown param", [("name", "a"), ("setp", "1m")], "query.setp"),
    ("bad matcher", [("name", "a"), ("match", "code==5")], "query.match"),
    ("unquoted", [("name", "a"), ("match", "code=5")], "query.match"),
    ("bad regex", [("name", "a"), ("match", 'code=~"("')], "query.match"),
    ("bad start", [("name", "a"), ("start", "soon")], "query.start"),
    ("start after end", [("name", "a"), ("start", "200"), ("end", "100")], "query.start"),
    ("bad end", [("name", "a"), ("end", "x")], "query.end"),
    ("bad step", [("name", "a"), ("step", "fast")], "query.step"),
    ("too many steps", [("name", "a"), ("step", "0.1")], "query.step"),
    ("agg without step", [("name", "a"), ("agg", "max")], "query.agg"),
    ("bad agg", [("name", "a"), ("step", "1m"), ("agg", "median")], "query.agg"),
    ("limit zero", [("name", "a"), ("limit", "0")], "query.limit"),
    ("limit huge", [("name", "a"), ("limit", "100000")], "query.limit"),
    ("limit text", [("name", "a"), ("limit", "ten")], "query.limit"),
    ("bad cursor", [("name", "a"), ("cursor", "!!!")], "query.cursor"),
    ("foreign cursor", [("name", "a"), ("cursor", encode_cursor("web-1"))], "query.cursor"),
]


@pytest.mark.parametrize(
    ("pairs", "field"), [(p, f) for _, p, f in BAD], ids=[c for c, _, _ in BAD]
)
def test_bad_params_name_the_field(pairs: list[tuple[str, str]], field: str) -> None:
    with pytest.raises(ProblemError) as err:
        parse_metrics_query(q(*pairs), now=NOW)
    assert err.value.status == 400
    assert err.value.field == field


def test_cursor_round_trip() -> None:
    assert decode_cursor(encode_cursor(7), kind=int) == 7
    assert decode_cursor(encode_cursor("web-1"), kind=str) == "web-1"


def test_matcher_semantics_like_prometheus() -> None:
    labels = {"code": "500", "path": "/api/x"}
    assert matches_all([parse_matcher('code=~"5.."')], "a", labels)
    assert not matches_all([parse_matcher('code=~"5"')], "a", labels)  # anchored
    assert matches_all([parse_matcher('path!~"/health"')], "a", labels)
    assert matches_all([parse_matcher('env=""')], "a", labels)  # absent = empty
    assert not matches_all([parse_matcher('env!=""')], "a", labels)
    assert matches_all([parse_matcher('agent="a"'), parse_matcher("code='500'")], "a", labels)
    m = parse_matcher(r'path=~"/api/\\w+"')
    assert m.value == r"/api/\w+" and m.matches("/api/x")
    assert parse_matcher(r'p="a\"b"').value == 'a"b'


def test_agent_state_thresholds() -> None:
    cfg = AgentsConfig(stale_after_s=30, down_after_s=120)
    assert agent_state(None, NOW, cfg) is AgentState.DOWN
    assert agent_state(NOW - 29.9, NOW, cfg) is AgentState.UP
    assert agent_state(NOW - 30, NOW, cfg) is AgentState.STALE
    assert agent_state(NOW - 119, NOW, cfg) is AgentState.STALE
    assert agent_state(NOW - 120, NOW, cfg) is AgentState.DOWN
