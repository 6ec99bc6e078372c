"""The notification pipeline's loops: dispatch transitions into groups, flush due groups into
the outbox, run escalation timers (the pipeline loop); send the outbox (the sender loop). Each
runs every ``tick_s`` (the poll, a safety net), whenever the rule engine records transitions,
and, given a LISTEN connection, whenever another control plane announces work (``NOTIFY``,
:mod:`wakeups`): at once, or at the work's due time. Every stage claims its work in PostgreSQL,
so any number of control planes can run it and each notification is still sent once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence

import asyncpg
from prometheus_client import CollectorRegistry

from control_plane.alerting import wakeups
from control_plane.alerting.channels.alimtalk import AlimTalkChannel
from control_plane.alerting.channels.base import Channel
from control_plane.alerting.channels.email import EmailChannel
from control_plane.alerting.channels.kakaowork import KakaoWorkChannel
from control_plane.alerting.channels.pagerduty import PagerDutyChannel
from control_plane.alerting.channels.slack import SlackChannel
from control_plane.alerting.channels.sms import SmsChannel
from control_plane.alerting.channels.webhook import WebhookChannel
from control_plane.alerting.dispatch import dispatch_events
from control_plane.alerting.flush import flush_due
from control_plane.alerting.incident_context import ContextSource, gather_pending
from control_plane.alerting.incidents import escalate_due
from control_plane.alerting.links import LinkSigner
from control_plane.alerting.outbox import prune_history
from control_plane.alerting.routing import InhibitRule, Route
from control_plane.alerting.sender import OutboxSender, Outcome
from control_plane.config import NotifyConfig

_PRUNE_EVERY_S = 3600.0
# Another control plane holds the dispatch lock: look again this soon (its pass is short, and
# transitions committed after it looked are left to us).
_DISPATCH_BUSY_RETRY_S = 0.02


def build_channels(cfg: NotifyConfig) -> dict[str, Channel]:
    """Destination name (``receiver/kind/index``) -> channel, from the config."""
    channels: dict[str, Channel] = {}
    for receiver in cfg.receivers:
        for i, hook in enumerate(receiver.webhook):
            channels[f"{receiver.name}/webhook/{i}"] = WebhookChannel(
                hook, min_interval_s=cfg.min_send_interval_s
            )
        for i, slack in enumerate(receiver.slack):
            channels[f"{receiver.name}/slack/{i}"] = SlackChannel(
                slack, min_interval_s=max(cfg.min_send_interval_s, cfg.slack_min_send_interval_s)
            )
        for i, pd in enumerate(receiver.pagerduty):
            channels[f"{receiver.name}/pagerduty/{i}"] = PagerDutyChannel(
                pd, min_interval_s=cfg.min_send_interval_s
            )
        for i, mail in enumerate(receiver.email):
            channels[f"{receiver.name}/email/{i}"] = EmailChannel(
                mail, min_interval_s=cfg.min_send_interval_s
            )
        for i, talk in enumerate(receiver.alimtalk):
            channels[f"{receiver.name}/alimtalk/{i}"] = AlimTalkChannel(
                talk, min_interval_s=cfg.min_send_interval_s
            )
        for i, sms in enumerate(receiver.sms):
            channels[f"{receiver.name}/sms/{i}"] = SmsChannel(
                sms, min_interval_s=cfg.min_send_interval_s
            )
        for i, work in enumerate(receiver.kakaowork):
            channels[f"{receiver.name}/kakaowork/{i}"] = KakaoWorkChannel(
                work, min_interval_s=cfg.min_send_interval_s
            )
    # People (escalation targets user:<id>, schedule:<id>): one destination per contact type.
    # (imported here: control_plane.oncall.channels imports this package)
    from control_plane.oncall.channels import people_channels

    channels.update(people_channels(cfg))
    return channels


class Notifier:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cfg: NotifyConfig,
        *,
        channels: Mapping[str, Channel] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        signer: LinkSigner | None = None,
        context_sources: Sequence[ContextSource] = (),
        background: bool = True,
        listen: wakeups.Connect | None = None,
        registry: CollectorRegistry | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        """``listen`` opens the dedicated LISTEN connection for cross-replica wake-ups (None:
        polling only); ``registry`` takes the listener's metrics."""
        # Without the background loop only run_once() does work (timeline tests drive it).
        self._background = background
        self._pool = pool
        # Signs the incident-page links put in escalation messages (none: no links).
        self.signer = signer
        self.context_sources = list(context_sources)
        self._on_outcome = on_outcome
        self._cfg = cfg
        self._clock = clock
        self._log = log or logging.getLogger("control_plane.alerting")
        self.routes = [Route.from_config(i, r) for i, r in enumerate(cfg.routes)]
        self.inhibit_rules = [
            InhibitRule.from_config(i, r) for i, r in enumerate(cfg.inhibit_rules)
        ]
        self.channels = dict(channels) if channels is not None else build_channels(cfg)
        self.policies = {p.name: p for p in cfg.escalation_policies}
        by_receiver: dict[str, list[str]] = {}
        for name in self.channels:
            by_receiver.setdefault(name.split("/", 1)[0], []).append(name)
        failover = {r.name for r in cfg.receivers if r.delivery == "failover"}
        # receiver -> where its messages are queued (failover: the first channel only)
        self.destinations = {
            r: dests[:1] if r in failover else dests for r, dests in by_receiver.items()
        }
        fallbacks = {
            dests[i]: dests[i + 1]
            for r, dests in by_receiver.items()
            if r in failover
            for i in range(len(dests) - 1)
        }
        self.sender = OutboxSender(
            pool,
            self.channels,
            retry_base_s=cfg.retry_base_s,
            retry_max_s=cfg.retry_max_s,
            fallbacks=fallbacks,
            fallback_after_attempts=cfg.fallback_after_attempts,
            rng=rng,
            log=self._log,
        )
        self._last_prune = 0.0
        self._wake = asyncio.Event()
        self._send_wake = asyncio.Event()
        # Wake-ups due later (a group's next flush, an escalation timer, a destination's pause).
        self._alarm = wakeups.Alarm(self.wake)
        self._send_alarm = wakeups.Alarm(self.wake_senders)
        self.listener = (
            wakeups.WakeListener(
                listen,
                self._on_wakeup,
                on_resync=self.wake,
                metrics=wakeups.WakeupMetrics(registry),
                log=self._log,
            )
            if listen is not None and background
            else None
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Notifier:
        if self._background:
            self._tasks.append(asyncio.create_task(self._run_pipeline(), name="notify-pipeline"))
            self._tasks.append(asyncio.create_task(self._run_senders(), name="notify-senders"))
            if self.listener is not None:
                self._tasks.append(asyncio.create_task(self.listener.run(), name="notify-listen"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        pending = set(self._tasks)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.5)
            # Python 3.11's asyncio.wait_for swallows a cancellation that arrives just as the
            # awaited event is set (a wake-up at close): the loop went on; cancel it again.
            for task in pending:
                task.cancel()
        for task in self._tasks:
            if not task.cancelled() and task.exception() is not None:
                self._log.error(
                    "notification task %s failed", task.get_name(), exc_info=task.exception()
                )
        self._tasks.clear()
        self._alarm.cancel()
        self._send_alarm.cancel()
        for channel in self.channels.values():
            await channel.close()

    def wake(self, *_: object) -> None:
        self._wake.set()

    def wake_senders(self) -> None:
        self._send_wake.set()

    def _on_wakeup(self, wakeup: wakeups.Wakeup) -> None:
        delay = 0.0 if wakeup.at is None else wakeup.at - self._clock()
        if wakeup.kind == wakeups.OUTBOX:
            if wakeup.destination in self.channels:  # else not ours to send
                self._send_alarm.after(delay)
        elif wakeup.kind in (wakeups.GROUP, wakeups.TIMER):
            self._alarm.after(delay)

    def _dispatch_busy(self) -> None:
        self._alarm.after(_DISPATCH_BUSY_RETRY_S)

    async def run_once(self) -> list[Outcome]:
        """Dispatch, flush and send everything due now; the outcomes of the sends."""
        await self._prepare(self._clock())
        return await self._send_due(self._clock())

    async def _prepare(self, now: float) -> None:
        """Dispatch, flush, escalate: everything up to the outbox."""
        while await dispatch_events(self._pool, self.routes, now, on_busy=self._dispatch_busy):
            pass
        link = self.signer.url if self.signer is not None else None
        while await flush_due(
            self._pool,
            self.destinations,
            now,
            policies=self.policies,
            link=link,
            list_link=self.signer.list_url if self.signer is not None else None,
            inhibit_rules=self.inhibit_rules,
        ):
            pass
        while await escalate_due(self._pool, self.policies, self.destinations, now, link=link):
            pass
        while await gather_pending(self._pool, self.context_sources, log=self._log):
            pass
        if now - self._last_prune >= _PRUNE_EVERY_S:
            self._last_prune = now
            await prune_history(self._pool, now, self._cfg.history_days)

    async def _send_due(self, now: float) -> list[Outcome]:
        outcomes: list[Outcome] = []

        async def worker() -> None:
            while (outcome := await self.sender.send_one(now)) is not None:
                outcomes.append(outcome)
                if self._on_outcome is not None:
                    self._on_outcome(outcome)

        await asyncio.gather(*(worker() for _ in range(self._cfg.senders)))
        return outcomes

    async def _run_pipeline(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._cfg.tick_s)
            self._wake.clear()
            try:
                await self._prepare(self._clock())
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                self._log.warning("notification pass failed; retrying: %s", exc)
            except Exception:  # pragma: no cover - a bug; keep the loop alive
                self._log.exception("notification pass failed")
            self.wake_senders()

    async def _run_senders(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._send_wake.wait(), self._cfg.tick_s)
            self._send_wake.clear()
            try:
                await self._send_due(self._clock())
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                self._log.warning("notification sending failed; retrying: %s", exc)
            except Exception:  # pragma: no cover - a bug; keep the loop alive
                self._log.exception("notification sending failed")
