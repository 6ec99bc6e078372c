"""Notification channels, one adapter per file, each with one ``send()``."""

from control_plane.alerting.channels.base import (
    Channel,
    Delivery,
    PermanentSendError,
    RateLimited,
    RetryableSendError,
    SendError,
)
from control_plane.alerting.channels.pagerduty import PagerDutyChannel
from control_plane.alerting.channels.slack import SlackChannel
from control_plane.alerting.channels.webhook import WebhookChannel

__all__ = [
    "Channel",
    "Delivery",
    "PagerDutyChannel",
    "PermanentSendError",
    "RateLimited",
    "RetryableSendError",
    "SendError",
    "SlackChannel",
    "WebhookChannel",
]
