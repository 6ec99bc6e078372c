"""The notification pipeline's aiohttp lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from control_plane.alerting.service import Notifier
from control_plane.appkeys import CONFIG, POOL
from control_plane.rules.context import RULE_ENGINE

NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier", Notifier)


async def notify_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the notifier, woken by the rule engine's transitions. Register it
    after ``rules_ctx``."""
    cfg = app[CONFIG].alerting
    engine = app[RULE_ENGINE]
    async with Notifier(app[POOL], cfg.notify) as notifier:
        engine.listeners.append(notifier.wake)
        app[NOTIFIER] = notifier
        try:
            yield
        finally:
            engine.listeners.remove(notifier.wake)
