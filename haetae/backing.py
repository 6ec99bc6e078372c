"""Resolve PostgreSQL and Redis: the configured servers, or embedded ones under a data dir."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from haetae.embedded import EmbeddedPostgres, EmbeddedRedis

log = logging.getLogger("haetae.backing")


@dataclass(frozen=True)
class Backing:
    postgres_dsn: str
    redis_url: str
    embedded: tuple[str, ...]  # which of "postgres", "redis" were started here


@contextlib.contextmanager
def backing_services(
    data_dir: Path, *, postgres_dsn: str | None, redis_url: str | None
) -> Iterator[Backing]:
    """Yield DSNs, starting embedded servers for the ones not given; stop them on exit."""
    with contextlib.ExitStack() as stack:
        embedded = []
        if postgres_dsn is None:
            pg = EmbeddedPostgres(data_dir / "postgres")
            postgres_dsn = pg.start()
            stack.callback(pg.stop)
            embedded.append("postgres")
        if redis_url is None:
            rd = EmbeddedRedis(data_dir / "redis")
            redis_url = rd.start()
            stack.callback(rd.stop)
            embedded.append("redis")
        if embedded:
            log.info("embedded servers running: %s (data in %s)", ", ".join(embedded), data_dir)
        yield Backing(postgres_dsn, redis_url, tuple(embedded))
