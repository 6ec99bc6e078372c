"""Resolve PostgreSQL and Redis: the configured servers, or embedded ones under a data dir."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from haetae.embedded import EmbeddedPostgres, EmbeddedRedis

log = logging.getLogger("haetae.backing")


@dataclass(frozen=True)
class Backing:
    postgres_dsn: str
    redis_url: str
    servers: tuple[EmbeddedPostgres | EmbeddedRedis, ...] = ()  # the ones started here

    @property
    def embedded(self) -> tuple[str, ...]:
        """Which of "postgres", "redis" were started here."""
        return tuple(server.name for server in self.servers)


@contextlib.contextmanager
def backing_services(
    data_dir: Path,
    *,
    postgres_dsn: str | None,
    redis_url: str | None,
    logs_dir: Path | None = None,
) -> Iterator[Backing]:
    """Yield DSNs, starting embedded servers for the ones not given; stop them on exit. The
    servers are in ``Backing.servers`` for a supervisor to watch and restart (the same handle
    restarts one on the same socket, so the DSNs stay valid)."""
    with contextlib.ExitStack() as stack:
        servers: list[EmbeddedPostgres | EmbeddedRedis] = []
        if postgres_dsn is None:
            pg = EmbeddedPostgres(
                data_dir / "postgres", log_path=logs_dir / "postgres.log" if logs_dir else None
            )
            stack.callback(pg.stop)
            postgres_dsn = pg.start()
            servers.append(pg)
        if redis_url is None:
            rd = EmbeddedRedis(
                data_dir / "redis", log_path=logs_dir / "redis.log" if logs_dir else None
            )
            stack.callback(rd.stop)
            redis_url = rd.start()
            servers.append(rd)
        if servers:
            names = ", ".join(s.name for s in servers)
            log.info("embedded servers running: %s (data in %s)", names, data_dir)
        yield Backing(postgres_dsn, redis_url, tuple(servers))


def blocking_redis(
    url: str,
    *,
    max_connections: int,
    pool_timeout_s: float,
    socket_timeout_s: float | None = None,
) -> aioredis.Redis:
    """A redis-py client on a blocking pool with lazy connections (a Redis down at start is
    reported by health, not fatal). Past ``max_connections`` a command waits up to
    ``pool_timeout_s`` for a free connection instead of failing at once: under bursts the
    default pool's "Too many connections" turned cache reads into misses, let duplicate Gemini
    analyses through their lease and made finished jobs run again (docs/performance_report.md).
    ``socket_timeout_s=None`` for a client that blocks on BLPOP while idle."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)
