"""(agent_id, metric name, label set) -> series id, cached in memory.

Unknown series are created in one batch per flush: ``INSERT ... ON CONFLICT DO NOTHING`` then a
``SELECT`` in a separate statement (so it sees rows another replica committed meanwhile). Rows are
inserted in key order, so two replicas creating overlapping series cannot deadlock. Series rows
are committed on their own, before the samples' transaction: a series without samples is
harmless, and a cached id always points at a committed row.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from control_plane.ingest.windows import SeriesRef

SeriesKey = tuple[str, str, str]  # (agent_id, name, labels_key)

_UPSERT = """
INSERT INTO series (agent_id, name, labels, labels_key)
SELECT a, n, k::jsonb, k FROM unnest($1::text[], $2::text[], $3::text[]) AS t(a, n, k)
ORDER BY t.a, t.n, t.k
ON CONFLICT (agent_id, name, labels_key) DO NOTHING
"""
_LOOKUP = """
SELECT s.series_id, s.agent_id, s.name, s.labels_key
FROM series s
JOIN unnest($1::text[], $2::text[], $3::text[]) AS t(a, n, k)
  ON s.agent_id = t.a AND s.name = t.n AND s.labels_key = t.k
"""


class SeriesResolver:
    def __init__(self, *, max_cached: int = 2_000_000) -> None:
        self._max_cached = max_cached
        self._cache: dict[SeriesKey, SeriesRef] = {}

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def known(self) -> Mapping[SeriesKey, SeriesRef]:
        """The cache itself (read-only use): the hot loop looks keys up without a method call."""
        return self._cache

    def get(self, key: SeriesKey) -> SeriesRef | None:
        return self._cache.get(key)

    async def resolve(
        self, conn: asyncpg.Connection, missing: Mapping[SeriesKey, Mapping[str, str]]
    ) -> dict[SeriesKey, SeriesRef]:
        """Ids for ``missing`` (key -> labels), creating the series that do not exist yet.
        Must run outside a transaction that could roll back after it."""
        if not missing:
            return {}
        keys = sorted(missing)
        agents = [k[0] for k in keys]
        names = [k[1] for k in keys]
        label_keys = [k[2] for k in keys]
        await conn.execute(_UPSERT, agents, names, label_keys)
        rows = await conn.fetch(_LOOKUP, agents, names, label_keys)
        if len(self._cache) + len(rows) > self._max_cached:
            # Simple bound: a cleared cache just costs one lookup per series again.
            self._cache.clear()
        found: dict[SeriesKey, SeriesRef] = {}
        for r in rows:
            key = (r["agent_id"], r["name"], r["labels_key"])
            ref = SeriesRef(r["series_id"], key[0], key[1], missing[key])
            found[key] = ref
            self._cache[key] = ref
        if len(found) != len(keys):  # pragma: no cover - would be a schema bug
            raise RuntimeError(f"resolved {len(found)} of {len(keys)} series")
        return found
