"""The notification pipeline's loop: dispatch transitions into groups, flush due groups into
the outbox, send the outbox; every ``tick_s`` and whenever the rule engine records
transitions. Every stage claims its work in PostgreSQL, so any number of control planes can run
it and each notification is still sent once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence

import asyncpg

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
        log: logging.Logger | None = None,
    ) -> None:
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
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Notifier:
        if self._background:
            self._tasks.append(asyncio.create_task(self._run_pipeline(), name="notify-pipeline"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for channel in self.channels.values():
            await channel.close()

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def run_once(self) -> list[Outcome]:
        """Dispatch, flush and send everything due now; the outcomes of the sends."""
        now = self._clock()
        while await dispatch_events(self._pool, self.routes, now):
            pass
        link = self.signer.url if self.signer is not None else None
        while await flush_due(
            self._pool,
            self.destinations,
            now,
            policies=self.policies,
            link=link,
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
        return await self._send_due(now)

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
                await self.run_once()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                self._log.warning("notification pass failed; retrying: %s", exc)
            except Exception:  # pragma: no cover - a bug; keep the loop alive
                self._log.exception("notification pass failed")
