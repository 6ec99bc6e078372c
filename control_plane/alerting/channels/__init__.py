"""Notification channels, one adapter per file, each with one ``send()``."""

from control_plane.alerting.channels.alimtalk import AlimTalkChannel
from control_plane.alerting.channels.base import (
    Channel,
    Delivery,
    PermanentSendError,
    RateLimited,
    RetryableSendError,
    SendError,
)
from control_plane.alerting.channels.email import EmailChannel
from control_plane.alerting.channels.kakaowork import KakaoWorkChannel
from control_plane.alerting.channels.pagerduty import PagerDutyChannel
from control_plane.alerting.channels.slack import SlackChannel
from control_plane.alerting.channels.sms import SmsChannel
from control_plane.alerting.channels.webhook import WebhookChannel

__all__ = [
    "AlimTalkChannel",
    "Channel",
    "Delivery",
    "EmailChannel",
    "KakaoWorkChannel",
    "PagerDutyChannel",
    "PermanentSendError",
    "RateLimited",
    "RetryableSendError",
    "SendError",
    "SlackChannel",
    "SmsChannel",
    "WebhookChannel",
]
