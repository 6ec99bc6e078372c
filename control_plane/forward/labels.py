"""The remote label set of each series, encoded once and cached.

A Haetae series is (agent, name, labels); on the remote side it becomes ``__name__`` = name,
the agent id as the ``agent`` label (what rules and the query API call it), the series' own
labels, and the external labels for those it lacks (Prometheus' ``external_labels`` rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg

from control_plane.forward.wire import encode_labels
from control_plane.query.matchers import AGENT_LABEL

_SERIES = "SELECT series_id, agent_id, name, labels FROM series WHERE series_id = ANY($1::int8[])"
_CACHE_ENTRIES = 200_000


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

    def __init__(self, pool: asyncpg.Pool, external_labels: Mapping[str, str]) -> None:
        self._pool = pool
        self._external = dict(external_labels)
        self._cache: dict[int, bytes] = {}

    async def encoded(self, series_ids: Iterable[int]) -> tuple[Mapping[int, bytes], set[int]]:
        """The encoded labels of (at least) ``series_ids``, and those of them no longer in the
        table (pruned). Only series not seen before are read."""
        cache = self._cache
        missing = {sid for sid in series_ids if sid not in cache}
        if not missing:
            return cache, missing
        if len(cache) + len(missing) > _CACHE_ENTRIES:
            cache.clear()
            missing = set(series_ids)
        for r in await self._pool.fetch(_SERIES, list(missing)):
            remote = remote_labels(r["agent_id"], r["name"], r["labels"], self._external)
            cache[r["series_id"]] = encode_labels(remote)
            missing.discard(r["series_id"])
        return cache, missing
