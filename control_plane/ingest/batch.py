"""Turning a batch of decoded reports into rows: pure, no I/O.

Split out of the writer so the hot per-sample loop is small and testable on its own. It makes
one pass over the samples: series already known get their id at once; the few unknown ones are
collected, created by the writer, then patched in by :meth:`PreparedReport.resolve`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from control_plane.ingest.decode import Report
from control_plane.ingest.series import SeriesKey
from control_plane.ingest.windows import SeriesRef

NewestInstant = Callable[[int], float | None]  # series id -> newest instant held, if any
ReportKey = tuple[str, str]  # (agent_id, report_id as canonical text)
CopyRecord = tuple[int, dt.datetime, float]
# Placeholder until an unknown series has its id; never reaches the database.
_UNRESOLVED = SeriesRef(-1, "", "", {})


@dataclass(slots=True)
class InOrderReport(Report):
    """A report whose samples must each be after the newest instant stored for their series
    (Prometheus remote write): :func:`prepare` drops the others and counts them here, rather
    than the route looking every series up once more before the flush does."""

    out_of_order: int = 0
    duplicates: int = 0  # at exactly the newest instant


@dataclass(slots=True)
class PreparedReport:
    report: Report
    key: ReportKey
    expired: int = 0
    records: list[CopyRecord] = field(default_factory=list)
    # For the windows, aligned with records: lists of references, not one more tuple a sample
    # (allocations are what the garbage collector makes us pay for).
    refs: list[SeriesRef] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    # Positions in records/refs whose series was unknown, with its key.
    unresolved: list[tuple[int, SeriesKey]] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return len(self.records)

    def resolve(self, refs: Mapping[SeriesKey, SeriesRef]) -> None:
        """Patch in the ids of the series created after :func:`prepare`."""
        records = self.records
        for i, key in self.unresolved:
            ref = refs[key]
            _, when, value = records[i]
            records[i] = (ref.series_id, when, value)
            self.refs[i] = ref
        self.unresolved.clear()

    def window_items(self) -> Iterator[tuple[SeriesRef, float, float]]:
        return zip(self.refs, self.times, (r[2] for r in self.records), strict=True)


def report_key(report: Report) -> ReportKey:
    return (report.agent_id, str(report.report_id))


def split_first_copies(reports: Iterable[Report]) -> tuple[list[Report], list[int]]:
    """The first copy of each report id in batch order, and the batch positions of the later
    copies (they can only ever be duplicates)."""
    seen: set[ReportKey] = set()
    firsts: list[Report] = []
    repeats: list[int] = []
    for i, report in enumerate(reports):
        key = report_key(report)
        if key in seen:
            repeats.append(i)
        else:
            seen.add(key)
            firsts.append(report)
    return firsts, repeats


def prepare(
    report: Report,
    cutoff: float,
    known: Mapping[SeriesKey, SeriesRef],
    missing: dict[SeriesKey, dict[str, str]],
    timestamps: dict[float, dt.datetime],
    newest: NewestInstant | None = None,
) -> PreparedReport:
    """COPY rows and window items for one report; samples older than ``cutoff`` are counted as
    expired. Series not in ``known`` are added to ``missing`` (key -> labels) and left
    unresolved. ``timestamps`` memoises float -> datetime across the batch (a report's samples
    mostly share one timestamp). An :class:`InOrderReport` also drops its late samples, against
    ``newest`` (the rule windows) and its own earlier samples of the same series."""
    if isinstance(report, InOrderReport) and newest is not None:
        return _prepare_in_order(report, cutoff, known, missing, timestamps, newest)
    out = PreparedReport(report, report_key(report))
    records = out.records
    add_record = records.append
    add_ref = out.refs.append
    add_time = out.times.append
    known_get = known.get
    agent = report.agent_id
    utc = dt.UTC
    fromtimestamp = dt.datetime.fromtimestamp
    expired = 0
    # The windows get the stored instant (whole microseconds, as PostgreSQL keeps it), so a
    # point read back from the database (back-fill, replication gaps) is the same instant.
    instants: dict[float, tuple[dt.datetime, float]] = {}
    for s in report.samples:
        ts = s.ts
        if ts < cutoff:
            expired += 1
            continue
        key = (agent, s.name, s.labels_key)
        ref = known_get(key)
        if ref is None:
            ref = _UNRESOLVED
            out.unresolved.append((len(records), key))
            missing.setdefault(key, s.labels)
        instant = instants.get(ts)
        if instant is None:
            when = timestamps.get(ts)
            if when is None:
                when = timestamps[ts] = fromtimestamp(ts, utc)
            instant = instants[ts] = (when, when.timestamp())
        add_record((ref.series_id, instant[0], s.value))
        add_ref(ref)
        add_time(instant[1])
    out.expired = expired
    return out


def _prepare_in_order(
    report: InOrderReport,
    cutoff: float,
    known: Mapping[SeriesKey, SeriesRef],
    missing: dict[SeriesKey, dict[str, str]],
    timestamps: dict[float, dt.datetime],
    newest: NewestInstant,
) -> PreparedReport:
    """:func:`prepare` for an :class:`InOrderReport`: the same loop with the check inside it,
    where the series reference is at hand (the agent-report loop stays free of it)."""
    out = PreparedReport(report, report_key(report))
    records = out.records
    add_record = records.append
    add_ref = out.refs.append
    add_time = out.times.append
    known_get = known.get
    agent = report.agent_id
    utc = dt.UTC
    fromtimestamp = dt.datetime.fromtimestamp
    expired = late = duplicates = 0
    instants: dict[float, tuple[dt.datetime, float]] = {}
    # The newest instant taken so far per series in this report: by id, or by key for a
    # series without an id yet (new, or out of the cache: not in the windows either).
    taken: dict[int, float] = {}
    taken_get = taken.get
    taken_new: dict[SeriesKey, float] = {}
    for s in report.samples:
        ts = s.ts
        if ts < cutoff:
            expired += 1
            continue
        # Compared as stored (whole microseconds), as the windows hold it.
        instant = instants.get(ts)
        if instant is None:
            when = timestamps.get(ts)
            if when is None:
                when = timestamps[ts] = fromtimestamp(ts, utc)
            instant = instants[ts] = (when, when.timestamp())
        ts = instant[1]
        key = (agent, s.name, s.labels_key)
        ref = known_get(key)
        if ref is None:
            prev = taken_new.get(key)
            if prev is not None and ts <= prev:
                late += 1
                duplicates += ts == prev
                continue
            taken_new[key] = ts
            ref = _UNRESOLVED
            out.unresolved.append((len(records), key))
            missing.setdefault(key, s.labels)
        else:
            sid = ref.series_id
            prev = taken_get(sid)
            if prev is None:
                prev = newest(sid)
            if prev is not None and ts <= prev:
                late += 1
                duplicates += ts == prev
                continue
            taken[sid] = ts
        add_record((ref.series_id, instant[0], s.value))
        add_ref(ref)
        add_time(ts)
    out.expired = expired
    # Assigned, not added: a flush written again (split on bad data, a partition re-made)
    # prepares the report again.
    report.out_of_order = late - duplicates
    report.duplicates = duplicates
    return out
