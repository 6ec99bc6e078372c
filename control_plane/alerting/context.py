"""The notification pipeline's aiohttp lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from control_plane.alerting.incident_context import RecentSeries, RuleExpressions
from control_plane.alerting.links import LinkSigner, load_link_key
from control_plane.alerting.service import Notifier
from control_plane.appkeys import CONFIG, METRICS, POOL
from control_plane.rules.context import ALERTING_METRICS, RULE_ENGINE
from control_plane.rules.engine import RuleEngine

NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier", Notifier)


async def notify_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the notifier, woken by the rule engine's transitions. Register it
    after ``rules_ctx``."""
    cfg = app[CONFIG].alerting
    engine = app[RULE_ENGINE]
    counter = app[ALERTING_METRICS].notifications
    http = app[CONFIG].http
    signer = LinkSigner(
        await load_link_key(app[POOL]),
        base_url=cfg.external_url or f"http://{http.host}:{http.port}",
        ttl_s=cfg.link_ttl_s,
    )
    pg = app[CONFIG].postgres
    assert pg.dsn is not None
    dsn = pg.dsn.get_secret_value()

    async def listen() -> asyncpg.Connection:
        # Cross-replica wake-ups: a connection of its own, outside the pool.
        return await asyncpg.connect(dsn, timeout=pg.connect_timeout_s)

    notifier = Notifier(
        app[POOL],
        cfg.notify,
        listen=listen,
        registry=app[METRICS].registry,
        on_outcome=lambda o: counter.labels(o.value).inc(),
        signer=signer,
        context_sources=[
            RecentSeries(lambda rule: _metric_names(engine, rule)),
            RuleExpressions(lambda rule: _expression(engine, rule)),
        ],
    )
    async with notifier:
        engine.listeners.append(notifier.wake)
        app[NOTIFIER] = notifier
        try:
            yield
        finally:
            engine.listeners.remove(notifier.wake)


def _metric_names(engine: RuleEngine, rule_name: str) -> frozenset[str]:
    rule = engine.rules.get(rule_name)
    return rule.metric_names if rule is not None else frozenset()


def _expression(engine: RuleEngine, rule_name: str) -> str | None:
    rule = engine.rules.get(rule_name)
    return rule.expr_text if rule is not None else None
