"""The agent as a whole: wires collectors, runner, spool, reporter and server, and keeps time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client import ProcessCollector as SelfProcessMetrics

from agent.client import ControlPlaneClient
from agent.collectors import build_collectors
from agent.dead_letter import DeadLetters
from agent.fsutil import ensure_private_dir
from agent.http.client import HttpClient
from agent.http.server import BodyHandler
from agent.push import PATH as PUSH_PATH
from agent.push import Push
from agent.reporter import Reporter, last_spooled_seq
from agent.runner import Cycle, Runner
from agent.server import HttpServer, build_routes
from agent.settings import AgentSettings, from_config
from agent.spool import Spool
from agent.spool_metrics import SpoolMetrics
from agent.state import SeqAllocator, TokenStore
from agent.status import HealthInputs, evaluate
from haetae import __version__

if TYPE_CHECKING:
    from agent.cache_host import AgentCache
    from agent.config import AgentConfig

# At shutdown, one last attempt to deliver what is spooled, bounded so SIGTERM stays prompt.
_FINAL_FLUSH_S = 5.0


class Agent:
    """``async with Agent(config) as agent: await agent.run(stop)``.

    Entering opens the spool, starts the HTTP server and the reporter; leaving makes a final
    bounded delivery attempt and releases everything. Whatever is not delivered stays spooled
    for the next start.
    """

    def __init__(
        self,
        config: AgentConfig | AgentSettings,
        *,
        registry: CollectorRegistry | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        # The validated pydantic tree or its plain mirror: the agent reads the mirror only.
        self.config = config = from_config(config)
        self.registry = registry if registry is not None else CollectorRegistry()
        self._log = logger or logging.getLogger("haetae.agent")
        self._stack = contextlib.AsyncExitStack()
        self._started_at = time.time()
        self._spool: Spool | None = None
        self._runner: Runner | None = None
        self._reporter: Reporter | None = None
        self._server: HttpServer | None = None
        self._cache: AgentCache | None = None
        self._push: Push | None = None
        self._cycles = Counter(
            "haetae_agent_cycles", "Collection cycles run.", registry=self.registry
        )
        self._overruns = Counter(
            "haetae_agent_cycle_overruns",
            "Collection ticks skipped because the previous cycle ran past them.",
            registry=self.registry,
        )
        self._cycle_duration = Gauge(
            "haetae_agent_cycle_duration_seconds",
            "How long the last cycle took (collect, encode, spool).",
            registry=self.registry,
        )
        self._cycle_samples = Gauge(
            "haetae_agent_cycle_samples", "Samples in the last report.", registry=self.registry
        )
        info = Gauge(
            "haetae_agent_info", "Agent identity.", ["version", "agent_id"], registry=self.registry
        )
        info.labels(__version__, config.agent_id).set(1)
        # The agent's own RSS and CPU, so its footprint is watched like any other process.
        SelfProcessMetrics(namespace="haetae_agent", registry=self.registry)

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Agent:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        cfg = self.config
        state_dir = cfg.state_dir
        await asyncio.to_thread(ensure_private_dir, state_dir)
        session = HttpClient(user_agent=f"haetae-agent/{__version__}")
        self._stack.push_async_callback(session.close)
        spool = await asyncio.to_thread(
            Spool,
            state_dir / "spool",
            max_bytes=cfg.spool.max_bytes,
            segment_bytes=cfg.spool.segment_bytes,
        )
        self._stack.callback(spool.close)
        self._spool = spool
        self.registry.register(SpoolMetrics(spool))
        collectors = build_collectors(cfg, session)
        if cfg.cache.enabled:
            # Imported here: an agent without a cache never loads redis-py and haetae.cache.
            from agent.cache_host import AgentCache

            self._cache = await self._stack.enter_async_context(
                AgentCache(cfg.cache, state_dir, node_id=f"agent-{cfg.agent_id}")
            )
            collectors.append(self._cache.collector)
            self._log.info("agent %s: serving its L1 on %s", cfg.agent_id, self._cache.unix_path)
        self._runner = Runner(collectors, self.registry)
        seq = SeqAllocator(state_dir / "report.seq", at_least=last_spooled_seq(spool))
        self._stack.callback(seq.close)
        client = ControlPlaneClient(
            cfg,
            session=session,
            tokens=TokenStore(state_dir / "agent.token", cfg.agent_id),
            registry=self.registry,
        )
        self._reporter = Reporter(
            client=client,
            spool=spool,
            seq=seq,
            registry=self.registry,
            dead_letters=DeadLetters(state_dir / "dead-letter.jsonl"),
        )
        post_routes: dict[str, BodyHandler] = {}
        if cfg.push.enabled:
            token = cfg.push.token.get_secret_value() if cfg.push.token is not None else None
            self._push = Push(
                self._reporter.submit,
                self.registry,
                token=token,
                min_interval_s=cfg.push.min_interval_s,
                max_samples=cfg.push.max_samples,
            )
            post_routes[PUSH_PATH] = self._push.handle
        server = HttpServer(
            build_routes(self.registry, self.health),
            cfg.http.host,
            cfg.http.port,
            post_routes=post_routes,
            max_body=cfg.push.max_bytes,
        )
        await server.start()
        self._stack.push_async_callback(server.stop)
        self._server = server
        self._reporter.start()
        self._stack.push_async_callback(self._stop_reporter)
        if self._push is not None:
            # Closed first (callbacks run last-in first-out): what is buffered is spooled
            # before the reporter's final flush; pushes after this are answered 503.
            self._stack.push_async_callback(self._push.close)
        self._log.info(
            "agent %s: serving http://%s:%s, reporting to %s every %g s",
            cfg.agent_id,
            cfg.http.host,
            server.port,
            cfg.control_plane.url,
            cfg.interval_s,
        )

    async def _stop_reporter(self) -> None:
        assert self._reporter is not None
        timeout = min(_FINAL_FLUSH_S, self.config.control_plane.request_timeout_s)
        if not await self._reporter.close(timeout):
            assert self._spool is not None
            self._log.info("stopping with %d reports spooled", self._spool.pending_count)

    # -- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Collect now, then on every multiple of ``interval_s`` (wall clock), until ``stop``.

        Ticks are computed from the previous tick, not from when a cycle ended, so the schedule
        does not drift; ticks a slow cycle ran past are skipped (and counted), never bunched.
        """
        interval = self.config.interval_s
        await self.collect_once()
        target = (time.time() // interval + 1) * interval
        while True:
            delay = target - time.time()
            if delay > interval:  # the wall clock went back: realign instead of stalling
                target = (time.time() // interval + 1) * interval
                delay = target - time.time()
            if await _wait(stop, delay):
                return
            await self.collect_once()
            target += interval
            now = time.time()
            if now >= target:
                missed = int((now - target) // interval) + 1
                target += missed * interval
                self._overruns.inc(missed)

    async def collect_once(self) -> Cycle | None:
        """One cycle: collect from every collector and hand the report to the reporter."""
        assert self._runner is not None and self._reporter is not None, "use `async with`"
        start = time.perf_counter()
        try:
            cycle = await self._runner.run_cycle()
            if self._push is not None and self._push.pending:
                # Pushed samples no urgent report has taken yet go with this one.
                cycle.samples.extend(self._push.take())
            await self._reporter.submit(cycle)
        except Exception:  # a bug here must cost one report, not the agent
            self._log.exception("collection cycle failed")
            return None
        self._cycles.inc()
        self._cycle_duration.set(time.perf_counter() - start)
        self._cycle_samples.set(len(cycle.samples))
        return cycle

    # -- introspection -----------------------------------------------------------------------

    @property
    def http_port(self) -> int | None:
        return self._server.port if self._server is not None else None

    @property
    def cache(self) -> AgentCache | None:
        """The agent-hosted L1 (None unless the ``cache`` section is enabled)."""
        return self._cache

    @property
    def push(self) -> Push | None:
        """The ``POST /v1/push`` endpoint's state (None when ``push.enabled`` is false)."""
        return self._push

    @property
    def spool(self) -> Spool:
        assert self._spool is not None, "use `async with`"
        return self._spool

    @property
    def reporter(self) -> Reporter:
        assert self._reporter is not None, "use `async with`"
        return self._reporter

    def health(self) -> tuple[dict[str, Any], int]:
        spool, reporter = self.spool, self.reporter
        return evaluate(
            HealthInputs(
                now=time.time(),
                started_at=self._started_at,
                interval_s=self.config.interval_s,
                link=reporter.status(),
                pending_reports=spool.pending_count,
                pending_bytes=spool.pending_bytes,
                spool_max_bytes=spool.max_bytes,
                spool_dropped=spool.dropped_total,
            )
        )


async def run_agent(
    config: AgentConfig | AgentSettings, *, stop: asyncio.Event | None = None
) -> None:
    """Run the agent until ``stop`` is set (forever if None)."""
    stop = stop if stop is not None else asyncio.Event()
    async with Agent(config) as agent:
        await agent.run(stop)


async def main_async(config: AgentConfig | AgentSettings) -> None:
    """``run_agent`` that also stops cleanly on SIGTERM and SIGINT (for a bare entry point)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_agent(config, stop=stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _wait(stop: asyncio.Event, delay: float) -> bool:
    """Wait ``delay`` seconds or until ``stop``; True if stopped."""
    if stop.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, delay)):
            await stop.wait()
    except TimeoutError:
        return False
    return True
