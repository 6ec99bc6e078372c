"""The channel that reaches a person: the address comes from the message, the type's adapter is
made for it (and reused), and a previous receipt (Slack thread) is only used for the same
address."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pytest

from control_plane.alerting.channels.base import Delivery, PermanentSendError
from control_plane.alerting.payload import Notification
from control_plane.oncall.channels import PersonChannel


class Fake:
    kind = "fake"
    min_interval_s = 0.0

    def __init__(self, address: str, log: list[tuple[str, Any]]) -> None:
        self.address = address
        self.log = log

    async def send(
        self,
        notification: Notification,
        *,
        idempotency_key: str,
        previous: Mapping[str, Any] | None = None,
    ) -> Delivery:
        self.log.append((self.address, previous))
        return Delivery(200, {"thread_ts": f"t-{self.address}"})

    async def close(self) -> None:
        self.log.append((self.address, "closed"))


def note(address: str | None) -> Notification:
    body: dict[str, Any] = {"status": "firing", "alerts": []}
    if address is not None:
        body["recipient"] = {"user": "u", "name": "U", "type": "slack", "address": address}
    return cast(Notification, body)


async def test_person_channel_sends_to_the_message_address() -> None:
    log: list[tuple[str, Any]] = []
    made: list[str] = []

    def make(address: str) -> Any:
        made.append(address)
        return Fake(address, log)

    channel = PersonChannel("slack", make)
    first = await channel.send(note("UA"), idempotency_key="1")
    assert first.receipt == {"thread_ts": "t-UA", "to": "UA"}
    await channel.send(note("UB"), idempotency_key="2", previous=first.receipt)
    await channel.send(note("UA"), idempotency_key="3", previous=first.receipt)
    assert log == [("UA", None), ("UB", None), ("UA", first.receipt)]
    assert made == ["UA", "UB"]  # one adapter per address, reused
    with pytest.raises(PermanentSendError):
        await channel.send(note(None), idempotency_key="4")
    await channel.close()
    assert sorted(x for x in log if x[1] == "closed") == [("UA", "closed"), ("UB", "closed")]
