"""The Ingestor's aiohttp lifecycle (and the replication of its windows between replicas)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from control_plane.appkeys import CONFIG, INGESTOR, METRICS, POOL, REDIS
from control_plane.ingest.gc_policy import ingest_gc_policy
from control_plane.ingest.replicate import ReplicationMetrics, SampleReplicator
from control_plane.ingest.writer import Ingestor

REPLICATOR: web.AppKey[SampleReplicator] = web.AppKey("replicator", SampleReplicator)

log = logging.getLogger("control_plane.ingest")


async def ingest_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: builds the Ingestor from the app's config, pool and metrics and stores
    it at ``app[INGESTOR]``; on shutdown it flushes what is pending. Register it after the
    pool and Redis. It also applies the ingest GC policy to the process (see ``gc_policy``).

    With ``ingest.replicate`` (auto: when Redis is configured) the committed samples are shared
    with the other replicas through a Redis Stream (``replicate.py``, at ``app[REPLICATOR]``)."""
    cfg = app[CONFIG]
    mode = cfg.ingest.replicate
    if mode == "on" and REDIS not in app:
        raise ValueError("ingest.replicate is on but no redis.url is configured")
    with ingest_gc_policy():
        async with Ingestor(app[POOL], cfg.ingest, cfg.retention, app[METRICS]) as ingestor:
            app[INGESTOR] = ingestor
            if mode == "off" or REDIS not in app:
                yield
                return
            replicator = SampleReplicator(
                app[REDIS],
                app[POOL],
                ingestor.windows,
                stream=cfg.ingest.replicate_stream,
                max_entries=cfg.ingest.replicate_max_entries,
                max_age_s=cfg.ingest.replicate_max_age_s,
                buffer_samples=cfg.ingest.replicate_buffer_samples,
                listeners=ingestor.commit_listeners,
                metrics=ReplicationMetrics(app[METRICS].registry),
            )
            # Registered (heartbeat) and positioned before ingest is served: see replicate.py.
            await replicator.start()
            ingestor.sample_listeners.append(replicator.publish)
            app[REPLICATOR] = replicator
            log.info("replicating the rule windows as %s", replicator.replica_id)
            try:
                yield
            finally:
                await ingestor.close()  # its last commits are published too
                await replicator.stop()
