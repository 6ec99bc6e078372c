"""The forwarder's aiohttp lifecycle: on when ``forward.url`` is set."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from control_plane.appkeys import CONFIG, INGESTOR, METRICS, POOL
from control_plane.forward import outbox
from control_plane.forward.client import RemoteWriteClient
from control_plane.forward.forwarder import Forwarder
from control_plane.forward.metrics import ForwardMetrics

FORWARDER: web.AppKey[Forwarder] = web.AppKey("forwarder", Forwarder)

log = logging.getLogger("control_plane.forward")


async def forward_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context (after ``ingest_ctx``): every commit also writes its samples to the
    outbox (a stage of the ingest transaction) and the forwarder sends them on. Torn down before
    the ingestor, whose last flushes still reach the outbox for the next start to send."""
    cfg = app[CONFIG].forward
    if cfg.url is None:
        yield
        return
    ingestor = app[INGESTOR]
    async with RemoteWriteClient(cfg) as client:
        forwarder = Forwarder(app[POOL], cfg, ForwardMetrics(app[METRICS].registry), client)
        ingestor.transaction_stages.append(outbox.append)
        ingestor.commit_listeners.append(forwarder.wake)
        await forwarder.start()
        app[FORWARDER] = forwarder
        log.info("forwarding samples to %s as %s", client.url, forwarder.outbox.owner)
        try:
            yield
        finally:
            ingestor.commit_listeners.remove(forwarder.wake)
            await forwarder.stop()
