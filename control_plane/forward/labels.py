"""The remote label set of each series, encoded once and cached.

A Haetae series is (agent, name, labels); on the remote side it becomes ``__name__`` = name,
the agent id as the ``agent`` label (what rules and the query API call it), the series' own
labels, and the external labels for those it lacks (Prometheus' ``external_labels`` rule).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import asyncpg

from control_plane.forward.wire import encode_labels
from control_plane.query.matchers import AGENT_LABEL

_SERIES = "SELECT series_id, agent_id, name, labels FROM series WHERE series_id = ANY($1::int8[])"


def remote_labels(
    agent_id: str, name: str, labels: Mapping[str, str], external: Mapping[str, str]
) -> dict[str, str]:
    out = dict(external)
    out.update(labels)
    out[AGENT_LABEL] = agent_id
    out["__name__"] = name
    return out


class SeriesLabels:
    """series id -> encoded TimeSeries labels, read from PostgreSQL once per series."""

    def __init__(
        self, pool: asyncpg.Pool, external_labels: Mapping[str, str], max_cached: int = 1_000_000
    ) -> None:
        self._pool = pool
        self._external = dict(external_labels)
        self._max = max_cached
        self._cache: dict[int, bytes] = {}
        self._reading = asyncio.Lock()

    async def encoded(self, series_ids: Iterable[int]) -> dict[int, bytes]:
        """The encoded labels of ``series_ids`` still in the table (pruned ones are missing),
        in a mapping of the caller's own: a later eviction cannot take labels from under it."""
        cache = self._cache
        wanted = set(series_ids)
        if any(sid not in cache for sid in wanted):
            # One reader at a time: workers claiming rows of the same new series wait for the
            # first one's read instead of reading and encoding the same labels again.
            async with self._reading:
                missing = [sid for sid in wanted if sid not in cache]
                if missing and len(cache) + len(missing) > self._max:
                    cache.clear()
                    missing = list(wanted)
                for r in await self._pool.fetch(_SERIES, missing) if missing else ():
                    remote = remote_labels(r["agent_id"], r["name"], r["labels"], self._external)
                    cache[r["series_id"]] = encode_labels(remote)
        return {sid: labels for sid in wanted if (labels := cache.get(sid)) is not None}
