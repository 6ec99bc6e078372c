"""Pure batch preparation: first copies, unknown series, expiry and timestamps."""

from __future__ import annotations

import datetime as dt
import uuid

from control_plane.ingest.batch import InOrderReport, prepare, split_first_copies
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


# -- in-order reports (remote write): late samples dropped where the series is looked up -------


def in_order(agent: str, *samples: Sample) -> InOrderReport:
    return InOrderReport(agent, uuid.uuid4(), None, 100.0, list(samples))


def test_in_order_report_drops_samples_at_or_before_the_newest_held() -> None:
    a = SeriesRef(1, "p", "a", {"n": "a"})
    b = SeriesRef(2, "p", "b", {"n": "b"})
    c = SeriesRef(3, "p", "c", {"n": "c"})
    known = {("p", n, f'{{"n":"{n}"}}'): ref for n, ref in (("a", a), ("b", b), ("c", c))}
    held = {1: 98.0, 2: 100.0}  # c: nothing held
    r = in_order(
        "p",
        s("a", 97, 1.0),  # before the newest held: out of order
        s("a", 99, 2.0),
        s("a", 101, 3.0),
        s("b", 100, 4.0),  # the newest held: a duplicate
        s("b", 100.5, 5.0),
        s("b", 100.5, 6.0),  # a duplicate of the sample just before
        s("b", 100.25, 7.0),  # before an earlier sample of this report
        s("c", 50, 8.0),
    )
    p = prepare(r, 10.0, known, {}, {}, held.get)
    assert [rec[2] for rec in p.records] == [2.0, 3.0, 5.0, 8.0]
    assert [ref.series_id for ref, _, _ in p.window_items()] == [1, 1, 2, 3]
    assert (r.out_of_order, r.duplicates) == (2, 2)
    # Prepared again (a flush written again after a split): counted once, not twice.
    again = prepare(r, 10.0, known, {}, {}, held.get)
    assert again.records == p.records and (r.out_of_order, r.duplicates) == (2, 2)


def test_in_order_report_checks_new_series_against_its_own_samples() -> None:
    r = in_order("p", s("y", 100, 1.0), s("y", 100, 2.0), s("y", 99, 3.0), s("y", 101, 4.0))
    missing: dict[SeriesKey, dict[str, str]] = {}
    p = prepare(r, 10.0, {}, missing, {}, lambda sid: None)
    assert [rec[2] for rec in p.records] == [1.0, 4.0]
    assert len(p.unresolved) == 2 and list(missing) == [("p", "y", '{"n":"y"}')]
    assert (r.out_of_order, r.duplicates) == (1, 1)


def test_in_order_compares_stored_instants_not_raw_floats() -> None:
    # The windows hold the instant as stored (whole microseconds): a re-sent sample finer than
    # that is a duplicate of it, not a later sample to store a second time.
    ts = 1_700_000_000.1234564
    stored = dt.datetime.fromtimestamp(ts, dt.UTC).timestamp()
    assert ts > stored
    x = SeriesRef(5, "p", "x", {"n": "x"})
    r = in_order("p", s("x", ts))
    p = prepare(r, 10.0, {("p", "x", '{"n":"x"}'): x}, {}, {}, {5: stored}.get)
    assert p.records == [] and r.duplicates == 1


def test_agent_reports_are_never_checked_for_order() -> None:
    x = SeriesRef(7, "a", "x", {"n": "x"})
    r = rep("a", uuid.uuid4(), s("x", 50, 1.0), s("x", 40, 2.0))
    p = prepare(r, 10.0, {("a", "x", '{"n":"x"}'): x}, {}, {}, {7: 60.0}.get)
    assert [rec[2] for rec in p.records] == [1.0, 2.0]
