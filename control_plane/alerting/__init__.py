"""Alert notifications: transitions -> groups (group_by, group_wait, group_interval,
repeat_interval) -> silences and dedup -> a durable per-destination outbox -> channels.

The aiohttp lifecycle is in :mod:`control_plane.alerting.context` (it depends on the rule
engine, which depends on this package's outcomes)."""

from control_plane.alerting.payload import Notification, build_notification
from control_plane.alerting.routing import Route, Silence
from control_plane.alerting.sender import OutboxSender, Outcome
from control_plane.alerting.service import Notifier, build_channels

__all__ = [
    "Notification",
    "Notifier",
    "OutboxSender",
    "Outcome",
    "Route",
    "Silence",
    "build_channels",
    "build_notification",
]
