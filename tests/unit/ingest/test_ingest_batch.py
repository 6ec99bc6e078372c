"""Pure batch preparation: first copies, unknown series, expiry and timestamps."""

from __future__ import annotations

import datetime as dt
import uuid

from control_plane.ingest.batch import prepare, split_first_copies
from control_plane.ingest.decode import Report, Sample
from control_plane.ingest.series import SeriesKey
from control_plane.ingest.windows import SeriesRef


def rep(agent: str, rid: uuid.UUID, *samples: Sample) -> Report:
    return Report(agent, rid, 1, 100.0, list(samples))


def s(name: str, ts: float, value: float = 1.0) -> Sample:
    return Sample(name, {"n": name}, f'{{"n":"{name}"}}', ts, value)


def test_later_copies_of_a_report_are_set_aside() -> None:
    r1, r2 = uuid.uuid4(), uuid.uuid4()
    batch = [rep("a", r1), rep("a", r2), rep("a", r1), rep("b", r1)]
    firsts, repeats = split_first_copies(batch)
    assert [(r.agent_id, r.report_id) for r in firsts] == [("a", r1), ("a", r2), ("b", r1)]
    assert repeats == [2]


def test_prepare_counts_expired_and_shares_datetimes() -> None:
    x = SeriesRef(7, "a", "x", {"n": "x"})
    known = {("a", "x", '{"n":"x"}'): x}
    r = rep("a", uuid.uuid4(), s("x", 100, 1.0), s("x", 10, 2.0), s("x", 100, 3.0))
    memo: dict[float, dt.datetime] = {}
    missing: dict[SeriesKey, dict[str, str]] = {}
    p = prepare(r, 50.0, known, missing, memo)
    assert p.expired == 1 and p.stored == 2 and missing == {} and p.unresolved == []
    when = dt.datetime.fromtimestamp(100, dt.UTC)
    assert p.records == [(7, when, 1.0), (7, when, 3.0)]
    assert p.records[0][1] is p.records[1][1]
    assert list(p.window_items()) == [(x, 100, 1.0), (x, 100, 3.0)]


def test_unknown_series_are_collected_then_patched_in() -> None:
    x = SeriesRef(7, "a", "x", {"n": "x"})
    known = {("a", "x", '{"n":"x"}'): x}
    r = rep("a", uuid.uuid4(), s("y", 100, 1.0), s("x", 100, 2.0), s("y", 101, 3.0), s("z", 1))
    missing: dict[SeriesKey, dict[str, str]] = {}
    p = prepare(r, 50.0, known, missing, {})
    y_key = ("a", "y", '{"n":"y"}')
    assert missing == {y_key: {"n": "y"}}  # z is expired, so not created
    y = SeriesRef(9, "a", "y", {"n": "y"})
    p.resolve({y_key: y})
    assert [rec[0] for rec in p.records] == [9, 7, 9]
    assert [(ref, v) for ref, _, v in p.window_items()] == [(y, 1.0), (x, 2.0), (y, 3.0)]
    assert p.unresolved == []
