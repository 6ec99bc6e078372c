"""Pure partition date math: names, bounds, what to create and drop."""

from __future__ import annotations

import datetime as dt

from control_plane.store import partitions as p

D = dt.date


def ts(day: dt.date, hour: int = 0) -> float:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC).timestamp()


def test_names_round_trip_and_reject_others() -> None:
    assert p.partition_name(D(2024, 3, 9)) == "samples_p20240309"
    assert p.parse_partition_name("samples_p20240309") == D(2024, 3, 9)
    assert p.parse_partition_name("samples_p20241399") is None
    assert p.parse_partition_name("samples_default") is None


def test_day_bounds_are_utc_midnights() -> None:
    start, end = p.day_bounds(D(2024, 12, 31))
    assert start.isoformat() == "2024-12-31T00:00:00+00:00"
    assert end.isoformat() == "2025-01-01T00:00:00+00:00"


def test_first_start_creates_back_to_retention_and_ahead() -> None:
    now = ts(D(2024, 3, 10), hour=12)
    plan = p.plan(now, [], retention_days=3, ahead_days=2)
    # cutoff = 2024-03-07 12:00, so the 7th (partly retained) through the 12th
    assert plan.create == [D(2024, 3, d) for d in range(7, 13)]
    assert plan.drop == []


def test_steady_state_creates_the_next_day_and_drops_expired_ones() -> None:
    now = ts(D(2024, 3, 11), hour=1)
    existing = [D(2024, 3, d) for d in range(5, 13)]
    plan = p.plan(now, existing, retention_days=3, ahead_days=2)
    assert plan.create == [D(2024, 3, 13)]
    assert plan.drop == [D(2024, 3, 5), D(2024, 3, 6), D(2024, 3, 7)]


def test_cutoff_and_storable_days() -> None:
    now = ts(D(2024, 3, 10), hour=12)
    assert p.retention_cutoff(now, 3) == ts(D(2024, 3, 7), hour=12)
    assert p.storable_day(D(2024, 3, 7), now, 3, 2)
    assert not p.storable_day(D(2024, 3, 6), now, 3, 2)
    assert p.storable_day(D(2024, 3, 12), now, 3, 2)
    assert not p.storable_day(D(2024, 3, 13), now, 3, 2)
