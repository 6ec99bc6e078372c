"""The monitoring query seam's bounds (issue 9 s.2): what PostgreSQL or datetime would refuse is
a 400 naming the parameter before any SQL runs, even without the web guard in front."""

from __future__ import annotations

import base64
import json

import pytest
from multidict import MultiDict

from control_plane.query.cursor import decode_cursor
from control_plane.query.matchers import MAX_MATCHER, parse_matcher
from control_plane.query.params import parse_duration, parse_metrics_query, parse_page, parse_time
from haetae.web.problem import ProblemError

NOW = 1_732_720_000.0


def forged(after: object) -> str:
    return base64.urlsafe_b64encode(json.dumps({"v": 1, "after": after}).encode()).decode()


@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        ([("name", "up"), ("match", 'job="a\x00b"')], "query.match[0]"),
        ([("name", "up"), ("match", 'job=~"' + "a" * MAX_MATCHER + '"')], "query.match[0]"),
        ([("name", "up")] + [("match", 'a="b"')] * 33, "query.match"),
        ([("name", "up\x00")], "query.name"),
        ([("name", "up"), ("start", "1e308")], "query.start"),
        ([("name", "up"), ("end", "1e15")], "query.end"),
        ([("name", "up"), ("start", "0000-01-01T00:00:00Z")], "query.start"),
        ([("name", "up"), ("step", "99999999999d")], "query.step"),
        ([("name", "up"), ("limit", "²")], "query.limit"),
        ([("name", "up"), ("limit", "9" * 5000)], "query.limit"),
        ([("name", "up"), ("cursor", forged(2**70))], "query.cursor"),
        ([("name", "up"), ("cursor", "c" * 513)], "query.cursor"),
    ],
)
def test_out_of_bounds_parameters_name_the_field(pairs: list[tuple[str, str]], field: str) -> None:
    with pytest.raises(ProblemError) as err:
        parse_metrics_query(MultiDict(pairs), now=NOW)
    assert (err.value.status, err.value.field) == (400, field)


def test_times_and_durations_keep_their_names_on_the_seams_bounds() -> None:
    assert parse_time("253402300799", "q") == 253402300799.0  # the end of 9999 is fine
    for bad in ("253402300800", "1e308", "9999-12-31T23:59:59-01:00"):
        with pytest.raises(ProblemError):
            parse_time(bad, "query.since")
    assert parse_duration("10y", "d") == 10 * 365 * 86400
    with pytest.raises(ProblemError):
        parse_duration("11y", "query.step")


def test_page_and_cursors_refuse_what_postgresql_would() -> None:
    assert parse_page(MultiDict([("limit", "5"), ("status", "x")])).limit == 5
    with pytest.raises(ProblemError) as err:
        parse_page(MultiDict([("limit", "²")]))
    assert err.value.field == "query.limit"
    assert decode_cursor(forged(2**63 - 1), kind=int) == 2**63 - 1
    for after, kind in ((2**63, int), (-1, int), ("a\x00", str), ("a" * 201, str)):
        with pytest.raises(ProblemError):
            decode_cursor(forged(after), kind=kind)


def test_matchers_refuse_nul_and_length() -> None:
    with pytest.raises(ProblemError) as err:
        parse_matcher('a="\x00"', where="body.matchers[0]")
    assert err.value.field == "body.matchers[0]"
    assert parse_matcher('a="' + "x" * 1024 + '"').value == "x" * 1024
