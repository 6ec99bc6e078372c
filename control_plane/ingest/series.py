"""(agent_id, metric name, label set) -> series id, cached in memory.

Unknown series are created in one batch per flush: ``INSERT ... ON CONFLICT DO NOTHING`` then a
``SELECT`` in a separate statement (so it sees rows another replica committed meanwhile). Rows are
inserted in key order, so two replicas creating overlapping series cannot deadlock. Series rows
are committed on their own, before the samples' transaction: a series without samples is
harmless, and a cached id always points at a committed row.

Series nothing reports any more are pruned by the maintenance job (``store/series_gc.py``) once
their ``last_seen_at`` is older than the retention period. Every resolution refreshes
``last_seen_at`` (the upsert's ``DO UPDATE``, skipped if it is under a minute old), and a cached
id is used for at most ``touch_max_s`` (a random 50-100 % of it, so a start-up's series do not
all come due at once) before being resolved again. So ``last_seen_at`` trails the real last use
by at most ``touch_max_s`` (one cheap upsert per series per ~45 min, not one per sample), and an
id in any process's cache always belongs to a row the pruning cannot take: it prunes only rows
unseen for retention + ``SERIES_TOUCH_MAX_S`` + slack. If a row does go first, the upsert waits
for that delete and inserts a fresh row.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable, Iterable, Mapping

import asyncpg

from control_plane.ingest.windows import SeriesRef

SeriesKey = tuple[str, str, str]  # (agent_id, name, labels_key)

_UPSERT = """
INSERT INTO series (agent_id, name, labels, labels_key)
SELECT a, n, k::jsonb, k FROM unnest($1::text[], $2::text[], $3::text[]) AS t(a, n, k)
ORDER BY t.a, t.n, t.k
ON CONFLICT (agent_id, name, labels_key) DO UPDATE SET last_seen_at = now()
    WHERE series.last_seen_at < now() - interval '1 minute'
RETURNING agent_id, xmax = 0 AS inserted
"""
# A cached series id is resolved again (which refreshes last_seen_at) within this long.
SERIES_TOUCH_MAX_S = 3600.0
_EXPIRE_EVERY_S = 10.0
_BUCKET_S = 60.0
_LOOKUP = """
SELECT s.series_id, s.agent_id, s.name, s.labels_key
FROM series s
JOIN unnest($1::text[], $2::text[], $3::text[]) AS t(a, n, k)
  ON s.agent_id = t.a AND s.name = t.n AND s.labels_key = t.k
"""
_EXISTING = """
SELECT s.agent_id, s.name, s.labels_key
FROM series s
JOIN unnest($1::text[], $2::text[], $3::text[]) AS t(a, n, k)
  ON s.agent_id = t.a AND s.name = t.n AND s.labels_key = t.k
"""
_COUNT_PER_AGENT = "SELECT agent_id, count(*) AS n FROM series GROUP BY agent_id"


class SeriesResolver:
    def __init__(
        self,
        *,
        max_cached: int = 2_000_000,
        touch_max_s: float = SERIES_TOUCH_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_cached = max_cached
        self._cache: dict[SeriesKey, SeriesRef] = {}
        self._touch_max_s = touch_max_s
        self._clock = clock
        # Expiry bucket (clock // _BUCKET_S) -> keys cached then; an entry leaves the cache when
        # its bucket comes due (a key resolved again meanwhile sits in a later bucket too and at
        # worst leaves early: one more upsert, never a stale id).
        self._due: dict[int, list[SeriesKey]] = {}
        self._next_expiry = clock() + _EXPIRE_EVERY_S

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def known(self) -> Mapping[SeriesKey, SeriesRef]:
        """The cache itself (read-only use): the hot loop looks keys up without a method call.
        Entries due for a refresh are dropped first (at most every ``_EXPIRE_EVERY_S``)."""
        now = self._clock()
        if now >= self._next_expiry:
            self._next_expiry = now + _EXPIRE_EVERY_S
            self.expire(now)
        return self._cache

    def expire(self, now: float) -> int:
        """Drop the entries due for a refresh; returns how many."""
        current = int(now // _BUCKET_S)
        dropped = 0
        cache = self._cache
        for bucket in [b for b in self._due if b <= current]:
            for key in self._due.pop(bucket):
                if cache.pop(key, None) is not None:
                    dropped += 1
        return dropped

    def get(self, key: SeriesKey) -> SeriesRef | None:
        return self._cache.get(key)

    async def existing(self, conn: asyncpg.Connection, keys: Iterable[SeriesKey]) -> set[SeriesKey]:
        """Which of ``keys`` have a series row already (for counting the new ones exactly)."""
        ordered = sorted(keys)
        rows = await conn.fetch(
            _EXISTING, [k[0] for k in ordered], [k[1] for k in ordered], [k[2] for k in ordered]
        )
        return {(r["agent_id"], r["name"], r["labels_key"]) for r in rows}

    async def resolve(
        self, conn: asyncpg.Connection, missing: Mapping[SeriesKey, Mapping[str, str]]
    ) -> dict[SeriesKey, SeriesRef]:
        """Ids for ``missing`` (key -> labels), creating the series that do not exist yet.
        Must run outside a transaction that could roll back after it."""
        found, _ = await self.resolve_counting(conn, missing)
        return found

    async def resolve_counting(
        self, conn: asyncpg.Connection, missing: Mapping[SeriesKey, Mapping[str, str]]
    ) -> tuple[dict[SeriesKey, SeriesRef], dict[str, int]]:
        """:meth:`resolve`, and how many series it created per agent (for the limits)."""
        if not missing:
            return {}, {}
        keys = sorted(missing)
        agents = [k[0] for k in keys]
        names = [k[1] for k in keys]
        label_keys = [k[2] for k in keys]
        upserted = await conn.fetch(_UPSERT, agents, names, label_keys)
        created = collections.Counter(r["agent_id"] for r in upserted if r["inserted"])
        rows = await conn.fetch(_LOOKUP, agents, names, label_keys)
        if len(self._cache) + len(rows) > self._max_cached:
            # Simple bound: a cleared cache just costs one lookup per series again.
            self._cache.clear()
            self._due.clear()
        found: dict[SeriesKey, SeriesRef] = {}
        now = self._clock()
        due = self._due
        span = self._touch_max_s / 2
        rand = random.random
        for r in rows:
            key = (r["agent_id"], r["name"], r["labels_key"])
            ref = SeriesRef(r["series_id"], key[0], key[1], missing[key])
            found[key] = ref
            self._cache[key] = ref
            # Due in 50-100 % of touch_max_s, rounded down to a bucket: never later.
            bucket = int((now + span + span * rand()) // _BUCKET_S) - 1
            due.setdefault(bucket, []).append(key)
        if len(found) != len(keys):  # pragma: no cover - would be a schema bug
            raise RuntimeError(f"resolved {len(found)} of {len(keys)} series")
        return found, dict(created)


async def count_per_agent(conn: asyncpg.Connection) -> dict[str, int]:
    """Live series per agent, as the series table holds them."""
    return {r["agent_id"]: r["n"] for r in await conn.fetch(_COUNT_PER_AGENT)}
