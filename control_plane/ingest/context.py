"""The Ingestor's aiohttp lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from control_plane.appkeys import CONFIG, INGESTOR, METRICS, POOL
from control_plane.ingest.gc_policy import ingest_gc_policy
from control_plane.ingest.writer import Ingestor


async def ingest_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: builds the Ingestor from the app's config, pool and metrics and stores
    it at ``app[INGESTOR]``; on shutdown it flushes what is pending. Register it after the
    pool. It also applies the ingest GC policy to the process (see ``gc_policy``)."""
    cfg = app[CONFIG]
    with ingest_gc_policy():
        async with Ingestor(app[POOL], cfg.ingest, cfg.retention, app[METRICS]) as ingestor:
            app[INGESTOR] = ingestor
            yield
