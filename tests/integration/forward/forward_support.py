"""Helpers for remote write out: an ingestor writing the outbox, forwarders, a real
VictoriaMetrics and a scripted fake store (for answers VictoriaMetrics never gives)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import cramjam
import pytest
from aiohttp import web
from tests_support import free_port

from control_plane.config import ForwardConfig, IngestConfig, RetentionConfig
from control_plane.forward import Forwarder, ForwardMetrics, RemoteWriteClient
from control_plane.forward.outbox import append
from control_plane.ingest import Ingestor, Report, Sample
from control_plane.ingest.decode import labels_key
from control_plane.telemetry import ControlPlaneMetrics


def make_report(agent: str, at: float, series: int, *, name: str = "fw_m") -> Report:
    """``series`` samples of ``name`` at ``at``; the value encodes (series, time)."""
    samples = [
        Sample(name, {"i": str(i)}, labels_key({"i": str(i)}), at, i * 1000.0 + at % 1000)
        for i in range(series)
    ]
    return Report(agent, uuid.uuid4(), None, at, samples)


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def metric(metrics: ForwardMetrics | ControlPlaneMetrics, name: str, **labels: str) -> float:
    registry = metrics.registry if isinstance(metrics, ControlPlaneMetrics) else None
    assert registry is not None
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class Forwarding:
    """An ingestor whose commits fill the outbox, and forwarders (one per "replica")."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.metrics = ControlPlaneMetrics()
        cfg = IngestConfig(flush_interval_s=0.01)
        self.ingestor = Ingestor(pool, cfg, RetentionConfig(retention_days=14), self.metrics)
        self.ingestor.transaction_stages.append(append)
        # One set of metrics for every forwarder here: replicas sum up on the same registry.
        self.forward_metrics = ForwardMetrics(self.metrics.registry)
        self.forwarders: list[tuple[Forwarder, RemoteWriteClient]] = []

    async def start_forwarder(
        self, url: str, *, start: bool = True, pool: asyncpg.Pool | None = None, **cfg: Any
    ) -> Forwarder:
        settings = {
            "url": url,
            "retry_base_s": 0.02,
            "retry_max_s": 0.2,
            "timeout_s": 5.0,
            "poll_interval_s": 0.1,
        }
        settings.update(cfg)
        config = ForwardConfig.model_validate(settings)
        client = RemoteWriteClient(config)
        forwarder = Forwarder(pool or self.pool, config, self.forward_metrics, client)
        await client.__aenter__()
        self.ingestor.commit_listeners.append(forwarder.wake)
        if start:
            await forwarder.start()
        self.forwarders.append((forwarder, client))
        return forwarder

    async def stop_forwarders(self) -> None:
        for forwarder, client in self.forwarders:
            await forwarder.stop()
            await client.__aexit__(None, None, None)
            with contextlib.suppress(ValueError):
                self.ingestor.commit_listeners.remove(forwarder.wake)
        self.forwarders.clear()

    def count(self, name: str, **labels: str) -> float:
        return metric(self.metrics, name, **labels)

    async def outbox_rows(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM forward_outbox"))


class FakeStore:
    """A remote-write endpoint that answers from a script (then 204) and keeps what it got."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.requests: list[tuple[dict[str, str], Any]] = []  # (headers, WriteRequest)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1/write"
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/write", self._write)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _write(self, request: web.Request) -> web.Response:
        remote_pb2 = pytest.importorskip("control_plane.ingest.prompb.remote_pb2")
        message = remote_pb2.WriteRequest()
        message.ParseFromString(bytes(cramjam.snappy.decompress_raw(await request.read())))
        self.requests.append((dict(request.headers), message))
        if self.script:
            status, headers = self.script.pop(0)
            return web.Response(status=status, headers=headers, text=f"scripted {status}")
        return web.Response(status=204)

    def samples(self) -> list[tuple[tuple[tuple[str, str], ...], int, float]]:
        out: list[tuple[tuple[tuple[str, str], ...], int, float]] = []
        for _, message in self.requests:
            for ts in message.timeseries:
                labels = tuple((label.name, label.value) for label in ts.labels)
                out.extend((labels, s.timestamp, s.value) for s in ts.samples)
        return out
