"""Who is on call: a schedule's layers and overrides evaluated at an instant, and rendered as
a list of shifts over a range. Pure.

Times are unix seconds (UTC): rotations hand off every ``rotation_s`` from the layer's
``start``, a fixed length whatever the local clock does. Restriction windows are local times
of day in the schedule's time zone (a 09:00 window stays at 09:00 across a DST change).
Precedence at an instant: the latest override covering it, else the last layer with someone on
call then, else nobody.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from control_plane.oncall.model import Layer, Override, Restriction, Schedule, iso

MAX_RANGE_S = 93 * 86400


@dataclass(frozen=True)
class OnCall:
    user_id: str
    source: str  # "override" or "layer"
    layer: str | None = None  # the layer's name
    override_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user_id,
            "source": self.source,
            "layer": self.layer,
            "override_id": self.override_id,
        }


@dataclass(frozen=True)
class Shift:
    start: float
    end: float
    who: OnCall

    def to_json(self) -> dict[str, Any]:
        return {"start": iso(self.start), "end": iso(self.end), **self.who.to_json()}


def restriction_windows(
    r: Restriction, tz: zoneinfo.ZoneInfo, since: float, until: float
) -> list[tuple[float, float]]:
    """The restriction's windows that overlap ``[since, until]``, in order."""
    first = dt.datetime.fromtimestamp(since, tz).date() - dt.timedelta(days=8)
    last = dt.datetime.fromtimestamp(until, tz).date()
    out = []
    day = first
    while day <= last:
        if r.type == "daily" or day.isoweekday() == r.day:
            local = dt.datetime.combine(
                day, dt.time(r.start_minute // 60, r.start_minute % 60), tzinfo=tz
            )
            start = local.timestamp()
            end = start + r.duration_s
            if end > since and start <= until:
                out.append((start, end))
        day += dt.timedelta(days=1)
    return out


def _restricted_in(layer: Layer, tz: zoneinfo.ZoneInfo, t: float) -> bool:
    if not layer.restrictions:
        return True
    return any(
        start <= t < end
        for r in layer.restrictions
        for start, end in restriction_windows(r, tz, t, t)
    )


def layer_user_at(layer: Layer, tz: zoneinfo.ZoneInfo, t: float) -> str | None:
    """Who the layer puts on call at ``t`` (None before its start, after its end, or outside
    its restrictions)."""
    if t < layer.start or (layer.end is not None and t >= layer.end):
        return None
    if not _restricted_in(layer, tz, t):
        return None
    turn = math.floor((t - layer.start) / layer.rotation_s)
    return layer.users[turn % len(layer.users)]


def oncall_at(schedule: Schedule, overrides: Sequence[Override], t: float) -> OnCall | None:
    """Who is on call in ``schedule`` at ``t`` (unix seconds), or None."""
    covering = [o for o in overrides if o.start <= t < o.end]
    if covering:
        latest = max(covering, key=lambda o: o.id)
        return OnCall(latest.user_id, "override", override_id=latest.id)
    tz = schedule.tz
    for layer in reversed(schedule.layers):
        user = layer_user_at(layer, tz, t)
        if user is not None:
            return OnCall(user, "layer", layer=layer.name)
    return None


def _layer_boundaries(
    layer: Layer, tz: zoneinfo.ZoneInfo, since: float, until: float
) -> Iterable[float]:
    yield layer.start
    if layer.end is not None:
        yield layer.end
    k = max(0, math.ceil((since - layer.start) / layer.rotation_s))
    while (at := layer.start + k * layer.rotation_s) < until:
        yield at
        k += 1
    for r in layer.restrictions:
        for start, end in restriction_windows(r, tz, since, until):
            yield start
            yield end


def shifts(
    schedule: Schedule, overrides: Sequence[Override], since: float, until: float
) -> list[Shift]:
    """The final schedule over ``[since, until)``: consecutive shifts, each one person from one
    source (a gap where nobody is on call has no shift)."""
    if until <= since:
        return []
    if until - since > MAX_RANGE_S:
        raise ValueError(f"a range of at most {MAX_RANGE_S // 86400} days")
    tz = schedule.tz
    points = {since, until}
    for layer in schedule.layers:
        points.update(_layer_boundaries(layer, tz, since, until))
    for o in overrides:
        points.update((o.start, o.end))
    cuts = sorted(p for p in points if since <= p <= until)
    out: list[Shift] = []
    for start, end in itertools.pairwise(cuts):
        who = oncall_at(schedule, overrides, start)
        if who is None:
            continue
        if out and out[-1].who == who and out[-1].end == start:
            out[-1] = Shift(out[-1].start, end, who)
        else:
            out.append(Shift(start, end, who))
    return out
