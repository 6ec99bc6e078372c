"""The agent-hosted L1: a LayeredCache (L1 + Redis L2 + invalidation follower) served over the
Redis protocol by ``L1Server``, plus the collector that puts its stats in the reports.

Imported only when the ``cache`` section is enabled: ``haetae.cache`` brings redis-py (and, via
its package's ``CacheConfig`` re-export, pydantic), which an agent without a cache never loads.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from types import TracebackType

from agent.collectors.cache import CacheCollector
from agent.l1_server import L1Server
from agent.settings import AgentCacheConfig
from haetae.cache import (
    CachePolicy,
    CacheStats,
    InvalidationBus,
    L1Cache,
    LayeredCache,
    RedisL2,
    client_from_url,
)
from haetae.resilience import BreakerConfig, CircuitBreaker

log = logging.getLogger("haetae.agent.cache")


class AgentCache:
    """``async with AgentCache(cfg, state_dir, node_id) as cache``: serving until left.

    A Redis that is down does not fail the start: the follower keeps retrying in the
    background and the breaker sends reads to the L1 (and misses) until Redis is back.
    """

    def __init__(self, cfg: AgentCacheConfig, state_dir: Path, *, node_id: str) -> None:
        self.cfg = cfg
        self.unix_path = cfg.unix_socket or state_dir / "l1.sock"
        self.stats = CacheStats("agent")
        l1 = L1Cache(cfg.max_entries, cfg.max_bytes)
        # Stale serving and negative caching are the read-through loader's business; the
        # agent's clients only GET and SET, so a value lives exactly its TTL.
        policy = CachePolicy(ttl_s=cfg.ttl_s, stale_ttl_s=0.0, negative_ttl_s=0.0)
        self.bus: InvalidationBus | None = None
        if cfg.redis_url is None:
            self.cache = LayeredCache(l1, None, policy=policy, stats=self.stats)
        else:
            url = cfg.redis_url.get_secret_value()
            breaker = CircuitBreaker(
                "agent-cache-l2", BreakerConfig(timeout_s=cfg.l2_timeout_ms / 1000)
            )
            l2 = RedisL2(client_from_url(url, socket_timeout=5.0, socket_connect_timeout=1.0))
            self.cache = LayeredCache(l1, l2, policy=policy, breaker=breaker, stats=self.stats)
            # The follower's blocking reads get their own connections, out of the L2's pool.
            follower = client_from_url(url, socket_timeout=5.0, socket_connect_timeout=1.0)
            self.bus = InvalidationBus(follower, self.cache, node_id=node_id)
        self.server = L1Server(self.cache, self.bus, unix_path=self.unix_path, port=cfg.port)
        self.collector = CacheCollector(self.stats)

    @property
    def port(self) -> int | None:
        return self.server.port

    async def __aenter__(self) -> AgentCache:
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self._close_cache)
            if self.bus is not None:
                await self.bus.start()
                stack.push_async_callback(self._stop_bus)
                if not self.bus.connected:
                    log.warning("cache: Redis is unreachable; the L1 serves reads, refuses writes")
            await self.server.start()
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.server.stop()
        await self._stack.aclose()

    async def _stop_bus(self) -> None:
        assert self.bus is not None
        await self.bus.stop()
        await self.bus.client.aclose()

    async def _close_cache(self) -> None:
        await self.cache.aclose()
        if self.cache.l2 is not None:
            await self.cache.l2.aclose()
