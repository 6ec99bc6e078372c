"""The rule engine's aiohttp lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from control_plane.appkeys import CONFIG, INGESTOR, METRICS, POOL
from control_plane.ingest.backfill import BackfillMetrics, WindowBackfill
from control_plane.rules.engine import RuleEngine
from control_plane.rules.metrics import AlertingMetrics
from control_plane.rules.span import needed_span

RULE_ENGINE: web.AppKey[RuleEngine] = web.AppKey("rule_engine", RuleEngine)
ALERTING_METRICS: web.AppKey[AlertingMetrics] = web.AppKey("alerting_metrics", AlertingMetrics)
WINDOW_BACKFILL: web.AppKey[WindowBackfill] = web.AppKey("window_backfill", WindowBackfill)


async def rules_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the rule engine over the ingest windows, woken by each ingest commit.
    Register it after ``ingest_ctx``. With ``alerting.enabled`` false the rules are still
    loaded (the API works) but nothing is evaluated."""
    cfg = app[CONFIG].alerting
    ingestor = app[INGESTOR]
    metrics = app[ALERTING_METRICS] = AlertingMetrics(app[METRICS].registry)
    engine = RuleEngine(app[POOL], ingestor.windows, cfg, metrics=metrics)
    if not cfg.enabled:
        await engine.ruleset.load()
        app[RULE_ENGINE] = engine
        yield
        return
    # The windows' history comes back from PostgreSQL in the background (ingest goes on); the
    # engine's first pass waits for it, at most ingest.backfill_timeout_s.
    ingest_cfg = app[CONFIG].ingest
    backfill = app[WINDOW_BACKFILL] = WindowBackfill(
        app[POOL], ingestor.windows, metrics=BackfillMetrics(app[METRICS].registry)
    )
    engine.gate = lambda: backfill.wait(ingest_cfg.backfill_timeout_s)
    async with engine:
        if ingest_cfg.backfill:
            span = needed_span((r.expr for r in engine.rules.values()), cfg.lookback_s)
            backfill.start(min(span, ingestor.windows.window_seconds))
        else:
            backfill.skip()
        ingestor.commit_listeners.append(engine.wake)
        app[RULE_ENGINE] = engine
        try:
            yield
        finally:
            ingestor.commit_listeners.remove(engine.wake)
            await backfill.close()
