"""Turning a batch of decoded reports into rows: pure, no I/O.

Split out of the writer so the hot per-sample loops are small and testable on their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from control_plane.ingest.decode import Report
from control_plane.ingest.series import SeriesKey
from control_plane.ingest.windows import SeriesRef

ReportKey = tuple[str, str]  # (agent_id, report_id as canonical text)
CopyRecord = tuple[int, dt.datetime, float]
WindowItem = tuple[SeriesRef, float, float]


@dataclass(slots=True)
class PreparedReport:
    report: Report
    key: ReportKey
    expired: int = 0
    records: list[CopyRecord] = field(default_factory=list)
    window: list[WindowItem] = field(default_factory=list)

    @property
    def stored(self) -> int:
        return len(self.records)


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


def find_missing_series(
    reports: Iterable[Report], cutoff: float, known: Callable[[SeriesKey], SeriesRef | None]
) -> dict[SeriesKey, dict[str, str]]:
    """Series of the storable samples (not older than ``cutoff``) with no known id yet."""
    missing: dict[SeriesKey, dict[str, str]] = {}
    for report in reports:
        agent = report.agent_id
        for s in report.samples:
            if s.ts < cutoff:
                continue
            key = (agent, s.name, s.labels_key)
            if key not in missing and known(key) is None:
                missing[key] = s.labels
    return missing


def prepare(
    report: Report,
    cutoff: float,
    ref_of: Callable[[SeriesKey], SeriesRef],
    timestamps: dict[float, dt.datetime],
) -> PreparedReport:
    """COPY rows and window items for one report; samples older than ``cutoff`` are counted as
    expired. ``timestamps`` memoises float -> datetime across the batch (a report's samples
    mostly share one timestamp)."""
    out = PreparedReport(report, report_key(report))
    records = out.records
    window = out.window
    agent = report.agent_id
    utc = dt.UTC
    fromtimestamp = dt.datetime.fromtimestamp
    expired = 0
    for s in report.samples:
        ts = s.ts
        if ts < cutoff:
            expired += 1
            continue
        ref = ref_of((agent, s.name, s.labels_key))
        when = timestamps.get(ts)
        if when is None:
            when = timestamps[ts] = fromtimestamp(ts, utc)
        records.append((ref.series_id, when, s.value))
        window.append((ref, ts, s.value))
    out.expired = expired
    return out
