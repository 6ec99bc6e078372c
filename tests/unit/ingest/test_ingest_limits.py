"""Series cardinality limits (pure): which limit refuses, how long an hourly refusal lasts,
and that the bookkeeping stays bounded."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from control_plane.config import IngestConfig
from control_plane.ingest.limits import SeriesBudget, SeriesLimit, SeriesLimitExceeded

CFG = IngestConfig(
    max_new_series_per_report=10,
    max_new_series_per_agent_hour=25,
    max_series_per_agent=40,
    max_series_global=60,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def refused(budget: SeriesBudget, agent: str, new: int) -> SeriesLimitExceeded:
    with pytest.raises(SeriesLimitExceeded) as err:
        budget.admission().admit(agent, new)
    return err.value


def test_each_limit_is_named() -> None:
    clock = Clock()
    budget = SeriesBudget(CFG, clock=clock)
    exc = refused(budget, "a", 11)
    assert (exc.limit, exc.status, exc.retry_after_s) == (SeriesLimit.PER_REPORT, 422, None)

    budget.created({"a": 20})
    exc = refused(budget, "a", 6)
    assert (exc.limit, exc.status) == (SeriesLimit.PER_AGENT_HOUR, 429)
    assert exc.retry_after_s is not None and 1 <= exc.retry_after_s <= 3600
    budget.admission().admit("a", 5)  # up to the limit is fine

    clock.now += 3600  # an hour later the burst is forgotten, the series are not
    budget.created({"a": 20})  # 40 live
    exc = refused(budget, "a", 1)
    assert (exc.limit, exc.status) == (SeriesLimit.PER_AGENT, 422)

    budget.created({"b": 20})  # 60 live in all
    exc = refused(budget, "c", 1)
    assert exc.limit is SeriesLimit.GLOBAL
    assert "60" in exc.detail


def test_the_hourly_window_slides_by_the_minute() -> None:
    clock = Clock()
    budget = SeriesBudget(CFG, clock=clock)
    budget.created({"a": 10})
    clock.now += 1800
    budget.created({"a": 10})
    exc = refused(budget, "a", 10)
    # room comes when the first minute's 10 expire: within the next 30 minutes
    assert exc.retry_after_s is not None and 1 <= exc.retry_after_s <= 1800 + 60
    clock.now += exc.retry_after_s
    budget.admission().admit("a", 10)


def test_a_batch_reserves_as_it_admits() -> None:
    budget = SeriesBudget(CFG, clock=Clock())
    admission = budget.admission()
    admission.admit("a", 10)
    admission.admit("a", 10)
    with pytest.raises(SeriesLimitExceeded):
        admission.admit("a", 10)  # 30 in the hour, reserved within this batch
    assert admission.fits([("b", 10)]) and not admission.fits([("b", 10), ("b", 10), ("b", 10)])
    admission.admit("a", 0)  # no new series: never refused


def test_live_counts_come_from_the_table() -> None:
    budget = SeriesBudget(CFG, clock=Clock())
    budget.created({"a": 30})
    budget.set_live({"a": 5, "b": 0})  # series pruned meanwhile
    assert (budget.live("a"), budget.live("b"), budget.live_total) == (5, 0, 5)


def test_memory_is_bounded_by_the_agents_heard_from() -> None:
    clock = Clock()
    budget = SeriesBudget(IngestConfig(), clock=clock)
    for minute in range(600):
        clock.now += 60
        budget.created({f"agent-{minute % 7}": 1})
    hours = budget._hours
    assert len(hours) == 7
    assert all(len(h.buckets) <= 61 for h in hours.values())
    for minute in range(200):  # agents that stop creating series are forgotten
        clock.now += 60
        budget.created({f"other-{minute}": 1})
    assert len(hours) <= 2 * len(budget._live) + 64 + 1


def test_limits_must_nest() -> None:
    with pytest.raises(ValidationError, match="max_new_series_per_report"):
        IngestConfig(max_new_series_per_report=100, max_new_series_per_agent_hour=10)
    with pytest.raises(ValidationError, match="max_series_per_agent"):
        IngestConfig(max_series_per_agent=100, max_series_global=10)
