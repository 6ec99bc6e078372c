"""Agent health evaluation: pass, warn on a stale link or backlog, fail when reports are lost."""

from __future__ import annotations

from agent.reporter import LinkStatus
from agent.status import HealthInputs, evaluate

OK_LINK = LinkStatus(
    last_success_at=1000.0, last_error=None, consecutive_failures=0, spool_error=None
)


def _inputs(**overrides: object) -> HealthInputs:
    base: dict[str, object] = dict(
        now=1005.0,
        started_at=900.0,
        interval_s=10.0,
        link=OK_LINK,
        pending_reports=0,
        pending_bytes=0,
        spool_max_bytes=1000,
        spool_dropped=0,
    )
    base.update(overrides)
    return HealthInputs(**base)  # type: ignore[arg-type]


def test_pass() -> None:
    doc, status = evaluate(_inputs())
    assert status == 200 and doc["status"] == "pass"
    link = doc["checks"]["controlPlane:link"][0]
    assert link["status"] == "pass" and link["observedValue"] == 5.0 and link["observedUnit"] == "s"
    assert link["time"].endswith("Z")
    assert doc["checks"]["spool:pendingReports"][0]["observedValue"] == 0


def test_fresh_agent_without_success_yet_passes() -> None:
    link = LinkStatus(None, None, 0, None)
    doc, _ = evaluate(_inputs(link=link, started_at=1000.0, now=1010.0))
    assert doc["status"] == "pass"


def test_stale_link_warns_with_last_error() -> None:
    link = LinkStatus(1000.0, "cannot reach http://cp: refused", 7, None)
    doc, status = evaluate(_inputs(link=link, now=1100.0, pending_reports=2))
    assert status == 200 and doc["status"] == "warn"
    assert "refused" in doc["checks"]["controlPlane:link"][0]["output"]


def test_backlog_warns() -> None:
    doc, _ = evaluate(_inputs(pending_reports=20))
    assert doc["checks"]["controlPlane:link"][0]["status"] == "warn"


def test_spool_nearly_full_warns_and_write_failure_fails() -> None:
    doc, _ = evaluate(_inputs(pending_bytes=800, spool_dropped=3))
    assert doc["checks"]["spool:pendingReports"][0]["status"] == "warn"
    assert "3 oldest reports dropped" in doc["checks"]["spool:pendingReports"][0]["output"]
    link = LinkStatus(1000.0, None, 0, "cannot append to spool: No space left on device")
    doc, status = evaluate(_inputs(link=link))
    assert status == 503 and doc["status"] == "fail"
