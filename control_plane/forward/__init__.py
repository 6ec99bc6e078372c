"""Remote write out: committed samples to a Prometheus-compatible store, through an outbox."""

from control_plane.forward.client import RemoteWriteClient
from control_plane.forward.context import FORWARDER, forward_ctx
from control_plane.forward.errors import (
    ForwardError,
    RejectedSendError,
    RetryableSendError,
    RetryReason,
)
from control_plane.forward.forwarder import Forwarder
from control_plane.forward.metrics import ForwardMetrics, Outcome
from control_plane.forward.outbox import Outbox

__all__ = [
    "FORWARDER",
    "ForwardError",
    "ForwardMetrics",
    "Forwarder",
    "Outbox",
    "Outcome",
    "RejectedSendError",
    "RemoteWriteClient",
    "RetryReason",
    "RetryableSendError",
    "forward_ctx",
]
