"""Series cardinality limits: pure bookkeeping, no I/O (the writer feeds it counts).

Like Prometheus's ``sample_limit``/``label_limit`` and Mimir's series limits, a report that would
create too many series is refused whole, before any series row is written, with the limit named:

* ``new_series_per_report``: a single report can never be accepted as it is: 422 (poison; the
  agent dead-letters it and moves on);
* ``new_series_per_agent_hour``: a burst; the same report fits once the hour has moved on: 429
  with ``Retry-After``;
* ``live_series_per_agent`` / ``live_series_global``: series rows that exist (they go away only
  when series pruning removes what stopped reporting): 422.

Reports that create no series (the steady state) are never refused. Live counts come from the
series table (refreshed by the writer, and counted up as this process creates series); series
created by other replicas meanwhile are seen at the next refresh, so with N replicas a limit may
be overshot by what the others created since then. Memory is bounded: per agent one integer and
at most 60 one-minute buckets.
"""

from __future__ import annotations

import collections
import enum
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from control_plane.config import IngestConfig
from control_plane.ingest.errors import IngestRejected

_BUCKET_S = 60.0
_HOUR_S = 3600.0


class SeriesLimit(enum.StrEnum):
    """Which limit refused a report (a metric label and the problem's ``limit`` member)."""

    PER_REPORT = "new_series_per_report"
    PER_AGENT_HOUR = "new_series_per_agent_hour"
    PER_AGENT = "live_series_per_agent"
    GLOBAL = "live_series_global"


class SeriesLimitExceeded(IngestRejected):
    """A report would create more series than a limit allows; nothing of it was written."""

    type_ = "series-limit"
    title = "Series limit exceeded"

    def __init__(
        self, limit: SeriesLimit, detail: str, *, retry_after_s: float | None = None
    ) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.limit = limit

    @property
    def status(self) -> int:
        # Only the hourly rate clears by itself; the others need fewer series or a new limit.
        return 429 if self.limit is SeriesLimit.PER_AGENT_HOUR else 422


@dataclass(slots=True)
class _Hour:
    """New series of one agent in the last hour, in one-minute buckets (oldest first)."""

    buckets: collections.deque[list[int]] = field(default_factory=collections.deque)
    total: int = 0

    def expire(self, minute: int) -> None:
        while self.buckets and self.buckets[0][0] <= minute - 60:
            self.total -= self.buckets.popleft()[1]

    def add(self, minute: int, n: int) -> None:
        if self.buckets and self.buckets[-1][0] == minute:
            self.buckets[-1][1] += n
        else:
            self.buckets.append([minute, n])
        self.total += n

    def seconds_until_room(self, needed: int, limit: int, now: float) -> float:
        """How long until ``needed`` more fit under ``limit`` as old buckets expire."""
        over = self.total + needed - limit
        for minute, n in self.buckets:
            over -= n
            if over <= 0:
                return max(1.0, (minute + 60) * _BUCKET_S - now)
        return _HOUR_S


class SeriesBudget:
    """The live and hourly series counts, and the admission of a batch's new series."""

    def __init__(self, cfg: IngestConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._cfg = cfg
        self._clock = clock
        self._live: dict[str, int] = {}
        self._live_total = 0
        self._hours: dict[str, _Hour] = {}

    @property
    def live_total(self) -> int:
        return self._live_total

    def live(self, agent_id: str) -> int:
        return self._live.get(agent_id, 0)

    def set_live(self, counts: Mapping[str, int]) -> None:
        """The series table's counts per agent (the truth, replacing what was counted up)."""
        self._live = {a: n for a, n in counts.items() if n > 0}
        self._live_total = sum(self._live.values())

    def created(self, per_agent: Mapping[str, int]) -> None:
        """Series this process just created."""
        now = self._clock()
        minute = int(now // _BUCKET_S)
        for agent, n in per_agent.items():
            if n <= 0:
                continue
            self._live[agent] = self._live.get(agent, 0) + n
            self._live_total += n
            hour = self._hours.get(agent)
            if hour is None:
                hour = self._hours[agent] = _Hour()
            hour.expire(minute)
            hour.add(minute, n)
        if len(self._hours) > 2 * len(self._live) + 64:
            self._forget_quiet_agents(minute)

    def admission(self) -> Admission:
        return Admission(self)

    def _forget_quiet_agents(self, minute: int) -> None:
        for agent in list(self._hours):
            hour = self._hours[agent]
            hour.expire(minute)
            if not hour.buckets:
                del self._hours[agent]

    def _check(self, agent: str, new: int, agent_reserved: int, total_reserved: int) -> None:
        cfg = self._cfg
        if new > cfg.max_new_series_per_report:
            raise SeriesLimitExceeded(
                SeriesLimit.PER_REPORT,
                f"the report would create {new} series, over the limit of "
                f"{cfg.max_new_series_per_report} new series per report",
            )
        now = self._clock()
        hour = self._hours.get(agent)
        recent = 0
        if hour is not None:
            hour.expire(int(now // _BUCKET_S))
            recent = hour.total
        if recent + agent_reserved + new > cfg.max_new_series_per_agent_hour:
            wait = (
                hour.seconds_until_room(
                    agent_reserved + new, cfg.max_new_series_per_agent_hour, now
                )
                if hour is not None
                else _BUCKET_S
            )
            raise SeriesLimitExceeded(
                SeriesLimit.PER_AGENT_HOUR,
                f"agent {agent!r} created {recent} series in the last hour; {new} more would "
                f"pass the limit of {cfg.max_new_series_per_agent_hour} new series per hour",
                retry_after_s=math.ceil(wait),
            )
        live = self._live.get(agent, 0) + agent_reserved
        if live + new > cfg.max_series_per_agent:
            raise SeriesLimitExceeded(
                SeriesLimit.PER_AGENT,
                f"agent {agent!r} has {live} series; {new} more would pass the limit of "
                f"{cfg.max_series_per_agent} live series per agent",
            )
        total = self._live_total + total_reserved
        if total + new > cfg.max_series_global:
            raise SeriesLimitExceeded(
                SeriesLimit.GLOBAL,
                f"the control plane holds {total} series; {new} more would pass the limit of "
                f"{cfg.max_series_global} live series",
            )


class Admission:
    """One flush's admission: reports are checked in batch order, each against what the
    earlier ones of the batch already reserved."""

    def __init__(self, budget: SeriesBudget) -> None:
        self._budget = budget
        self._reserved: dict[str, int] = {}
        self._total = 0

    def admit(self, agent_id: str, new: int) -> None:
        """Reserve ``new`` series for ``agent_id`` or raise :class:`SeriesLimitExceeded`."""
        if new <= 0:
            return
        self._budget._check(agent_id, new, self._reserved.get(agent_id, 0), self._total)
        self._reserved[agent_id] = self._reserved.get(agent_id, 0) + new
        self._total += new

    def fits(self, items: Iterable[tuple[str, int]]) -> bool:
        """Would every (agent, new) pass, reserved one after the other? (Nothing is kept.)"""
        trial = Admission(self._budget)
        try:
            for agent, new in items:
                trial.admit(agent, new)
        except SeriesLimitExceeded:
            return False
        return True
