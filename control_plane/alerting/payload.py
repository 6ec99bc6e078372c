"""The channel-neutral notification: Alertmanager's webhook payload (version 4), which the
webhook channel sends as is and the other channels render; pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict


class AlertPayload(TypedDict):
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: str
    generatorURL: str
    fingerprint: str
    # Haetae's addition: the alert is held firing by flap control.
    flapping: bool


class IncidentInfo(TypedDict):
    id: int
    title: str
    status: str  # triggered | acknowledged | resolved
    level: int  # the escalation level this message is for (0-based)
    url: NotRequired[str]  # a signed, expiring link to the incident page
    # Why it is sent: triggered (a page), updated, escalated, acknowledged, resolved.
    event: NotRequired[str]
    # Edit the message already sent to this destination; post nothing new (Slack).
    update_only: NotRequired[bool]


class Notification(TypedDict):
    version: str
    groupKey: str
    truncatedAlerts: int
    status: str
    receiver: str
    groupLabels: dict[str, str]
    commonLabels: dict[str, str]
    commonAnnotations: dict[str, str]
    externalURL: str
    alerts: list[AlertPayload]
    # Present on incident messages: the incident they are about.
    incident: NotRequired[IncidentInfo]


@dataclass(frozen=True)
class GroupAlert:
    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: str  # firing | resolved
    flapping: bool
    starts_at: float
    ends_at: float | None


# Alertmanager's "zero" time for alerts that have not ended.
_NEVER = "0001-01-01T00:00:00Z"


def build_notification(
    group_key: str,
    receiver: str,
    group_labels: Mapping[str, str],
    alerts: Sequence[GroupAlert],
    *,
    external_url: str = "",
) -> Notification:
    firing = any(a.state == "firing" for a in alerts)
    return Notification(
        version="4",
        groupKey=group_key,
        truncatedAlerts=0,
        status="firing" if firing else "resolved",
        receiver=receiver,
        groupLabels=dict(group_labels),
        commonLabels=_common([a.labels for a in alerts]),
        commonAnnotations=_common([a.annotations for a in alerts]),
        externalURL=external_url,
        alerts=[
            AlertPayload(
                status=a.state,
                labels=dict(a.labels),
                annotations=dict(a.annotations),
                startsAt=_iso(a.starts_at),
                endsAt=_iso(a.ends_at) if a.ends_at is not None else _NEVER,
                generatorURL="",
                fingerprint=a.fingerprint,
                flapping=a.flapping,
            )
            for a in alerts
        ],
    )


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    common = dict(maps[0])
    for m in maps[1:]:
        common = {k: v for k, v in common.items() if m.get(k) == v}
    return common


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


def message_link(n: Notification) -> str | None:
    """Where a message sends its reader: the incident's page (signed), else the signed list of
    incidents (``externalURL`` of a group message)."""
    incident = n.get("incident")
    url = incident.get("url") if incident is not None else None
    return url or n["externalURL"] or None


def summary_line(n: Notification) -> str:
    """One line for chat channels: status, alert name(s), how many, flapping."""
    names = sorted({a["labels"].get("alertname", "?") for a in n["alerts"]})
    firing = sum(1 for a in n["alerts"] if a["status"] == "firing")
    flapping = any(a["flapping"] for a in n["alerts"])
    status = f"FIRING:{firing}" if n["status"] == "firing" else "RESOLVED"
    extra = " (flapping: held firing)" if flapping else ""
    incident = n.get("incident")
    if incident is not None:
        head = f"INCIDENT #{incident['id']} {incident['status'].upper()}"
        more = f" ({firing} alerts firing)" if firing > 1 else ""
        return f"[{head} level {incident['level'] + 1}] {incident['title']}{more}"
    return f"[{status}] {', '.join(names)}{extra}"
