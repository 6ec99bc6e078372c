"""The agent's health (application/health+json), as a pure function of what it observed."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.reporter import LinkStatus

# No acknowledged report for this many intervals means the link is in trouble.
_STALE_INTERVALS = 3
# More pending reports than this is a backlog (one or two are simply in flight).
_BACKLOG_REPORTS = 3
_SPOOL_WARN_RATIO = 0.5


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


_RANK = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclass(frozen=True, slots=True)
class HealthInputs:
    now: float
    started_at: float
    interval_s: float
    link: LinkStatus
    pending_reports: int
    pending_bytes: int
    spool_max_bytes: int
    spool_dropped: int


def evaluate(i: HealthInputs) -> tuple[dict[str, Any], int]:
    """The health document and its HTTP status (503 only for ``fail``)."""
    stamp = datetime.fromtimestamp(i.now, UTC).isoformat().replace("+00:00", "Z")
    link, link_note = _link(i)
    spool, spool_note = _spool(i)
    since = i.link.last_success_at if i.link.last_success_at is not None else i.started_at
    checks = {
        "controlPlane:link": [
            _check("system", link, max(0.0, i.now - since), "s", link_note, stamp)
        ],
        "spool:pendingReports": [
            _check("datastore", spool, i.pending_reports, "reports", spool_note, stamp)
        ],
    }
    overall = max((link, spool), key=_RANK.__getitem__)
    doc = {
        "status": overall.value,
        "description": "haetae agent",
        "checks": checks,
    }
    return doc, 503 if overall is Status.FAIL else 200


def _link(i: HealthInputs) -> tuple[Status, str | None]:
    since = i.link.last_success_at if i.link.last_success_at is not None else i.started_at
    stale = i.now - since > _STALE_INTERVALS * i.interval_s
    if stale or i.pending_reports > _BACKLOG_REPORTS:
        # Only warn: restarting the agent would not bring the control plane back, and the
        # spool keeps every report until it does.
        note = f"{i.pending_reports} reports waiting"
        if i.link.last_error:
            note += f"; last error: {i.link.last_error}"
        return Status.WARN, note
    return Status.PASS, None


def _spool(i: HealthInputs) -> tuple[Status, str | None]:
    if i.link.spool_error:
        return Status.FAIL, i.link.spool_error  # reports are being lost
    if i.pending_bytes > _SPOOL_WARN_RATIO * i.spool_max_bytes:
        note = f"spool {i.pending_bytes / i.spool_max_bytes:.0%} full"
        if i.spool_dropped:
            note += f"; {i.spool_dropped} oldest reports dropped"
        return Status.WARN, note
    return Status.PASS, None


def _check(
    component_type: str, status: Status, value: float, unit: str, note: str | None, stamp: str
) -> dict[str, Any]:
    check: dict[str, Any] = {
        "componentType": component_type,
        "status": status.value,
        "observedValue": value,
        "observedUnit": unit,
        "time": stamp,
    }
    if note:
        check["output"] = note
    return check
