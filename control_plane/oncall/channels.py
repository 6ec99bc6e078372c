"""Reaching people through the existing channel adapters.

Each contact-method type with provider settings (``alerting.notify.people``) is one outbox
destination, ``@people/<type>/0``; a message for a person carries their address in
``notification["recipient"]`` (frozen when the escalation level fired), and the
:class:`PersonChannel` sends it with the type's adapter (Slack, SMS, AlimTalk, email) configured
for that address. Slack threads per person: a previous receipt is only used when it was for the
same address.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from control_plane.alerting.channels.alimtalk import AlimTalkChannel
from control_plane.alerting.channels.base import Channel, Delivery, PermanentSendError
from control_plane.alerting.channels.email import EmailChannel
from control_plane.alerting.channels.slack import SlackChannel
from control_plane.alerting.channels.sms import SmsChannel
from control_plane.alerting.payload import Notification
from control_plane.config import NotifyConfig, PeopleChannelsConfig
from control_plane.oncall.model import people_destination as destination

_CACHE = 256


class PersonChannel:
    def __init__(
        self, kind: str, make: Callable[[str], Channel], *, min_interval_s: float = 0.0
    ) -> None:
        self.kind = kind
        self.min_interval_s = min_interval_s
        self._make = make
        self._adapters: OrderedDict[str, Channel] = OrderedDict()

    async def send(
        self,
        notification: Notification,
        *,
        idempotency_key: str,
        previous: Mapping[str, Any] | None = None,
    ) -> Delivery:
        recipient = notification.get("recipient")
        address = recipient.get("address") if isinstance(recipient, dict) else None
        if not isinstance(address, str) or not address:
            raise PermanentSendError("a message for a person without the person's address")
        adapter = await self._adapter(address)
        same = previous is not None and previous.get("to") == address
        delivery = await adapter.send(
            notification, idempotency_key=idempotency_key, previous=previous if same else None
        )
        return Delivery(delivery.status, {**delivery.receipt, "to": address})

    async def _adapter(self, address: str) -> Channel:
        adapter = self._adapters.get(address)
        if adapter is None:
            adapter = self._adapters[address] = self._make(address)
            while len(self._adapters) > _CACHE:
                _, old = self._adapters.popitem(last=False)
                await old.close()
        else:
            self._adapters.move_to_end(address)
        return adapter

    async def close(self) -> None:
        for adapter in self._adapters.values():
            await adapter.close()
        self._adapters.clear()


def people_channels(cfg: NotifyConfig) -> dict[str, Channel]:
    """The ``@people/<type>/0`` destinations for the contact-method types configured."""
    people: PeopleChannelsConfig = cfg.people
    interval = cfg.min_send_interval_s
    out: dict[str, Channel] = {}
    if (slack := people.slack) is not None:
        out[destination("slack")] = PersonChannel(
            "slack",
            lambda a: SlackChannel(slack.model_copy(update={"channel": a}), min_interval_s=0),
            min_interval_s=max(interval, cfg.slack_min_send_interval_s),
        )
    if (sms := people.sms) is not None:
        out[destination("sms")] = PersonChannel(
            "sms", lambda a: SmsChannel(sms.model_copy(update={"to": a})), min_interval_s=interval
        )
    if (talk := people.alimtalk) is not None:

        def alimtalk(address: str) -> Channel:
            update: dict[str, Any] = {"to": address}
            if talk.fallback_sms is not None:
                update["fallback_sms"] = talk.fallback_sms.model_copy(update={"to": address})
            return AlimTalkChannel(talk.model_copy(update=update))

        out[destination("alimtalk")] = PersonChannel("alimtalk", alimtalk, min_interval_s=interval)
    if (mail := people.email) is not None:
        out[destination("email")] = PersonChannel(
            "email",
            lambda a: EmailChannel(mail.model_copy(update={"to": [a]})),
            min_interval_s=interval,
        )
    return out
