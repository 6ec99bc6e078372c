"""Replication of committed samples between control-plane replicas, through a Redis Stream.

Each replica keeps the rule windows in its own memory and fills them after its own ingest
commits. So that the replica evaluating a shard sees every agent's samples whichever replica
ingested them (no sticky routing), each replica also:

* **publishes** the samples a commit newly stored (``Ingestor.sample_listeners``): one stream
  entry per commit batch, appended by a small Lua script that numbers it (``n``, a counter in
  the meta hash), tags it with the replica id (``o``) and trims the stream (``MAXLEN ~`` and
  ``MINID ~``: ``ingest.replicate_max_entries`` / ``replicate_max_age_s``). The payload is
  little-endian arrays: series ids (int64) and values (float64), 16 bytes a sample, and the
  times run-length coded (a report's samples share one instant). The
  publish never blocks nor fails ingest: batches wait in a bounded in-memory buffer
  (``ingest.replicate_buffer_samples``) while Redis is unreachable; beyond it the oldest are
  dropped (``haetae_replicate_dropped_samples_total``) and the next entry carries the oldest
  dropped time (``g``), from which the other replicas re-read PostgreSQL.
* **follows** the stream on a dedicated connection (``XREAD BLOCK``), applying the other
  replicas' entries to its windows with merge semantics (a point at an instant already held is
  kept), then wakes the rule engine like a local commit (``Ingestor.commit_listeners``). Series
  it does not know yet are looked up in PostgreSQL once.

Gaps. The entry numbers are consecutive: a follower that finds a jump (entries trimmed away
while it was cut off) or a step back (Redis restarted without the stream), or an entry carrying
``g``, back-fills the affected span from PostgreSQL (``WindowBackfill.run`` of backfill.py:
since the last entry it applied, or the oldest dropped sample, minus ``_GAP_SLACK_S``; capped
by the window length) and merges it, so the windows converge. Merging is idempotent, so an
entry applied and also back-filled is not counted twice.

A single replica pays one script call (one XADD) per commit batch and, once a second, one small
round trip (its heartbeat and the peers' list): a follower reads the stream only while another
replica is alive (heartbeats in a sorted set, refreshed by every publish too). When alone it
just moves its position to the stream's end, read *before* the peers' list, so that a replica
appearing (it registers before it serves ingest) cannot have published anything the position
skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import struct
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import RedisError

from control_plane.ingest.backfill import WindowBackfill
from control_plane.ingest.batch import PreparedReport
from control_plane.ingest.windows import SeriesRef, SeriesWindows
from haetae.cache.invalidation import default_node_id, parse_id

_BIG_ENDIAN = sys.byteorder == "big"
_RUNS = struct.Struct("<I")
# Back-filled spans start this much before the last entry applied / the oldest dropped sample.
_GAP_SLACK_S = 120.0
# A replica not heard from (publish or heartbeat) for this long is gone.
_PEER_STALE_S = 5.0
_HEARTBEAT_S = 1.0
_EVICT_EVERY_S = 60.0
_SEND_BATCHES = 64
_REF_CACHE = 200_000

_SERIES = "SELECT series_id, agent_id, name, labels FROM series WHERE series_id = ANY($1::int8[])"

# KEYS: stream, meta hash, replicas zset. ARGV: maxlen, origin, g, sids, times, values, minid,
# now, trim mode ('~' or '=').
_APPEND = """
local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[9], ARGV[1], '*',
    'n', n, 'o', ARGV[2], 'g', ARGV[3], 's', ARGV[4], 't', ARGV[5], 'v', ARGV[6])
redis.call('HSET', KEYS[2], 'id', id)
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[9], ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[2])
return id
"""


class ReplicationMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.published = Counter(
            "haetae_replicate_published_samples_total",
            "Committed samples published to the other replicas (Redis Stream).",
            registry=r,
        )
        self.applied = Counter(
            "haetae_replicate_applied_samples_total",
            "Samples of other replicas applied to this replica's windows.",
            registry=r,
        )
        self.dropped = Counter(
            "haetae_replicate_dropped_samples_total",
            "Samples not published because the buffer was full (Redis unreachable); the other "
            "replicas back-fill them from PostgreSQL.",
            registry=r,
        )
        self.buffered = Gauge(
            "haetae_replicate_buffered_samples",
            "Samples waiting to be published.",
            registry=r,
        )
        self.lag = Gauge(
            "haetae_replicate_follower_lag_seconds",
            "Age of the last stream entry applied when read (0 when caught up).",
            registry=r,
        )
        self.gap_backfills = Counter(
            "haetae_replicate_gap_backfills_total",
            "Back-fills from PostgreSQL after a gap in the stream (trimmed, reset, dropped).",
            registry=r,
        )
        self.connected = Gauge(
            "haetae_replicate_connected",
            "1 while the follower is connected to the stream.",
            registry=r,
        )
        self.peers = Gauge(
            "haetae_replicate_peers", "Other live replicas (by heartbeat).", registry=r
        )


@dataclass(slots=True)
class _Batch:
    sids: bytes
    times: bytes
    values: bytes
    count: int
    oldest: float


def encode(new: Sequence[PreparedReport]) -> _Batch | None:
    """The payload of one commit's newly stored samples (None if there are none). Times are
    run-length coded (a report's samples mostly share one instant)."""
    sids = array("q", [ref.series_id for p in new for ref in p.refs])
    if not sids:
        return None
    run_times = array("d")
    run_lengths = array("q")
    for p in new:
        times = p.times
        if not times:
            continue
        if min(times) == max(times):
            run_times.append(times[0])
            run_lengths.append(len(times))
            continue
        for t, same in itertools.groupby(times):
            run_times.append(t)
            run_lengths.append(sum(1 for _ in same))
    values = array("d", [r[2] for p in new for r in p.records])
    oldest = min(run_times)
    if _BIG_ENDIAN:  # pragma: no cover - the wire format is little-endian
        for a in (sids, run_times, run_lengths, values):
            a.byteswap()
    times_blob = _RUNS.pack(len(run_times)) + run_lengths.tobytes() + run_times.tobytes()
    return _Batch(sids.tobytes(), times_blob, values.tobytes(), len(sids), oldest)


def decode(fields: dict[bytes, bytes]) -> tuple[array[int], array[float], array[float]]:
    sids, values = array("q"), array("d")
    sids.frombytes(fields[b"s"])
    values.frombytes(fields[b"v"])
    blob = fields[b"t"]
    (runs,) = _RUNS.unpack_from(blob)
    if len(blob) != _RUNS.size + 16 * runs:
        raise ValueError("malformed replication entry")
    run_lengths, run_times = array("q"), array("d")
    run_lengths.frombytes(blob[_RUNS.size : _RUNS.size + 8 * runs])
    run_times.frombytes(blob[_RUNS.size + 8 * runs :])
    if _BIG_ENDIAN:  # pragma: no cover
        for a in (sids, values, run_lengths, run_times):
            a.byteswap()
    times = array("d")
    for t, n in zip(run_times, run_lengths, strict=True):
        times.extend(array("d", (t,)) * n)
    if not len(sids) == len(times) == len(values):
        raise ValueError("malformed replication entry")
    return sids, times, values


class SampleReplicator:
    """Publishes this replica's committed samples and applies the others'. ``start``/``stop``."""

    def __init__(
        self,
        client: aioredis.Redis,
        pool: asyncpg.Pool,
        windows: SeriesWindows,
        *,
        stream: str = "haetae:ingest:samples",
        max_entries: int = 2_000,
        max_age_s: float = 60.0,
        buffer_samples: int = 1_000_000,
        listeners: list[Callable[[], None]] | None = None,
        metrics: ReplicationMetrics | None = None,
        replica_id: str | None = None,
        clock: Callable[[], float] = time.time,
        block_ms: int = 1000,
        retry_s: float = 0.5,
        exact_trim: bool = False,
        log: logging.Logger | None = None,
    ) -> None:
        self._client = client
        self._pool = pool
        self.windows = windows
        self.stream = stream
        self._meta = f"{stream}:meta"
        self._replicas = f"{stream}:replicas"
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self.buffer_samples = buffer_samples
        # The ingestor's commit listeners (the rule engine's wake), called after applying.
        self.listeners = listeners if listeners is not None else []
        self.metrics = metrics or ReplicationMetrics()
        self.replica_id = replica_id or default_node_id()
        self._own = self.replica_id.encode()
        self._clock = clock
        self.block_ms = block_ms
        self.retry_s = retry_s
        # MAXLEN/MINID ~ trims whole stream nodes only (cheap); exact trimming is for tests.
        self.exact_trim = exact_trim
        self._log = log or logging.getLogger("control_plane.ingest.replicate")
        # publishing
        self._queue: deque[_Batch] = deque()
        self._buffered = 0
        self._dropped_since: float | None = None
        self._publish_wake = asyncio.Event()
        self._publishing_ok = True
        # following
        self.last_id: str | None = None
        self.last_n = 0
        self._last_time = 0.0  # publish time of the last entry applied or skipped
        self.connected = False
        self.peers: list[str] = []
        self._refs: dict[int, SeriesRef] = {}
        self._gap_since: float | None = None
        self._gap_task: asyncio.Task[None] | None = None
        self._last_evict = 0.0
        self._last_beat = 0.0
        self._catching_up = False
        self.applied_entries = 0
        self.gap_backfills = 0
        self._ready = asyncio.Event()
        self._stopping = False
        self._publisher: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._follow_client: aioredis.Redis | None = None

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, new: list[PreparedReport], now: float) -> None:
        """Queue the samples one commit newly stored (``Ingestor.sample_listeners``); never
        blocks. Past the buffer's bound the oldest batches are dropped and counted."""
        batch = encode(new)
        if batch is None:
            return
        self._queue.append(batch)
        self._buffered += batch.count
        while self._buffered > self.buffer_samples and self._queue:
            dropped = self._queue.popleft()
            self._buffered -= dropped.count
            self.metrics.dropped.inc(dropped.count)
            since = self._dropped_since
            self._dropped_since = dropped.oldest if since is None else min(since, dropped.oldest)
        self.metrics.buffered.set(self._buffered)
        self._publish_wake.set()

    async def _publish_loop(self) -> None:
        delay = self.retry_s
        while True:
            await self._publish_wake.wait()
            if not self._queue:
                self._publish_wake.clear()
                if self._stopping:
                    return
                continue
            batches = list(itertools.islice(self._queue, _SEND_BATCHES))
            marker = self._dropped_since
            try:
                async with asyncio.timeout(5.0):
                    await self._send(batches, marker)
            except Exception as exc:  # Redis unreachable, mostly; never stop publishing
                if self._publishing_ok:
                    self._log.warning(
                        "cannot publish samples to the replication stream (%r); buffering "
                        "(%d samples)",
                        exc,
                        self._buffered,
                    )
                self._publishing_ok = False
                if self._stopping:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if not self._publishing_ok:
                self._log.info("publishing to the replication stream again")
            self._publishing_ok = True
            delay = self.retry_s
            if self._dropped_since == marker:
                self._dropped_since = None
            sent = {id(b) for b in batches}
            # Batches dropped meanwhile (buffer full) left from the front; the rest were sent.
            while self._queue and id(self._queue[0]) in sent:
                b = self._queue.popleft()
                self._buffered -= b.count
                self.metrics.published.inc(b.count)
            self.metrics.buffered.set(self._buffered)

    async def _send(self, batches: list[_Batch], dropped_since: float | None) -> None:
        now = self._clock()
        minid = f"{max(0, int((now - self.max_age_s) * 1000))}-0"
        trim = "=" if self.exact_trim else "~"
        pipe = self._client.pipeline(transaction=False)
        for i, b in enumerate(batches):
            g = repr(dropped_since) if i == 0 and dropped_since is not None else ""
            pipe.eval(
                _APPEND,
                3,
                self.stream,
                self._meta,
                self._replicas,
                self.max_entries,
                self.replica_id,
                g,
                b.sids,
                b.times,
                b.values,
                minid,
                repr(now),
                trim,
            )
        await pipe.execute()

    # -- following -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start publishing and following; returns once registered and positioned on the stream
        (or after 2 s of failing: it keeps trying in the background)."""
        self._stopping = False
        self._follow_client = _dedicated(self._client, self.block_ms / 1000 + 2.0)
        loop = asyncio.get_running_loop()
        self._publisher = loop.create_task(self._publish_loop(), name="replicate-publish")
        self._follower = loop.create_task(self._follow_loop(), name="replicate-follow")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 2.0)

    async def stop(self) -> None:
        """Publish what is buffered (at most ~1 s), then stop."""
        self._stopping = True
        self._publish_wake.set()
        publisher, self._publisher = self._publisher, None
        tasks = [t for t in (self._follower, self._gap_task) if t is not None]
        self._follower = None
        if publisher is not None:
            await asyncio.wait([publisher], timeout=1.0)
            tasks.append(publisher)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        client, self._follow_client = self._follow_client, None
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._client.zrem(self._replicas, self.replica_id)
        if client is not None:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()
        self.metrics.connected.set(0)

    async def _follow_loop(self) -> None:
        while not self._stopping:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                if self.connected:
                    self._log.warning("replication stream lost (%r); will catch up", exc)
                self.connected = False
                self.metrics.connected.set(0)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # Resolving series failed: the entries were not consumed, read them again.
                self._log.warning("cannot apply replicated samples (%r); retrying", exc)
            except Exception:  # pragma: no cover - a bug; keep following
                self._log.exception("the replication follower failed; restarting it")
            if not self._stopping:
                await asyncio.sleep(self.retry_s)

    async def _follow(self) -> None:
        client = self._follow_client
        assert client is not None
        limit = self.block_ms / 1000 + 2.0
        async with asyncio.timeout(limit):
            await self._position(client)
            await self._beat(client, force=True)
        self.connected = True
        self.metrics.connected.set(1)
        self._ready.set()
        while not self._stopping:
            if not self.peers and not self._catching_up:
                await self._idle(client, limit)
                continue
            async with asyncio.timeout(limit):
                reply: Any = await client.xread(
                    {self.stream: self.last_id or "0-0"}, count=16, block=self.block_ms
                )
            entries = reply[0][1] if reply else []
            if entries:
                await self._apply(entries)
            else:
                self.metrics.lag.set(0)
                self._catching_up = False
            had_peers = bool(self.peers)
            async with asyncio.timeout(limit):
                await self._beat(client)
            if had_peers and not self.peers:
                # Alone again: read what the last peer published before going idle.
                self._catching_up = True

    async def _idle(self, client: aioredis.Redis, limit: float) -> None:
        """Alone: keep the position at the stream's end without reading payloads. The end is
        read *before* the peers' list: if that still says alone, nobody else can have
        published up to there (a replica registers before it publishes, and every publish
        refreshes its registration)."""
        self.metrics.lag.set(0)
        async with asyncio.timeout(limit):
            # One round trip: a pipeline's commands run in order, the end's read first.
            end = await self._beat(client, force=True, read_end=True)
        assert end is not None
        end_id, end_n = end
        if self.peers:
            return  # read from the last position taken while alone
        self.last_id, self.last_n = end_id, end_n
        self._last_time = self._clock()
        self._maybe_evict()
        await asyncio.sleep(_HEARTBEAT_S)

    async def _end(self, client: aioredis.Redis) -> tuple[str, int]:
        raw: Any = await client.hmget(self._meta, ["id", "n"])
        return (raw[0].decode() if raw[0] else "0-0"), int(raw[1] or 0)

    async def _position(self, client: aioredis.Redis) -> None:
        """On the first connection: the stream's end (the start-up back-fill loads what came
        before). On a reconnection: go on from the last entry read, and look for a reset or
        a stream trimmed empty meanwhile."""
        end_id, end_n = await self._end(client)
        if self.last_id is None:
            self.last_id, self.last_n = end_id, end_n
            self._last_time = self._clock()
            return
        self._catching_up = True
        if end_n < self.last_n:
            self._gap(self._last_time, "the replication stream was reset")
            self.last_id, self.last_n = "0-0", 0
        elif end_n > self.last_n and not await client.xlen(self.stream):
            self._gap(self._last_time, "entries were trimmed before they were read")
            self.last_id, self.last_n = end_id, end_n

    async def _beat(
        self, client: aioredis.Redis, *, force: bool = False, read_end: bool = False
    ) -> tuple[str, int] | None:
        """Heartbeat and the live peers (when due or forced); with ``read_end`` also the
        stream's end, read before the peers' list, in the same round trip."""
        now = self._clock()
        if not force and now - self._last_beat < _HEARTBEAT_S:
            return None
        self._last_beat = now
        pipe = client.pipeline(transaction=False)
        if read_end:
            pipe.hmget(self._meta, ["id", "n"])
        pipe.zadd(self._replicas, {self.replica_id: now})
        pipe.zremrangebyscore(self._replicas, "-inf", now - 60 * _PEER_STALE_S)
        pipe.zrangebyscore(self._replicas, now - _PEER_STALE_S, "+inf")
        replies: Any = await pipe.execute()
        peers = sorted(p.decode() for p in replies[-1] if p != self._own)
        if peers != self.peers:
            self._log.info("replication peers: %s", ", ".join(peers) or "none")
        self.peers = peers
        self.metrics.peers.set(len(peers))
        if not read_end:
            return None
        raw = replies[0]
        return (raw[0].decode() if raw[0] else "0-0"), int(raw[1] or 0)

    async def _apply(self, entries: Any) -> None:
        first_n = int(entries[0][1].get(b"n", 0))
        if first_n != self.last_n + 1:
            why = (
                "entries were trimmed before they were read"
                if first_n > self.last_n
                else "the replication stream was reset"
            )
            self._gap(self._last_time, why)
        decoded = []
        wanted: set[int] = set()
        for _entry_id, fields in entries:
            if fields.get(b"o") == self._own:
                continue  # applied to the windows at commit
            g = fields.get(b"g")
            if g:
                self._gap(float(g), "a replica dropped samples it could not publish")
            try:
                sids, times, values = decode(fields)
            except (KeyError, ValueError):
                self._log.warning("skipping a malformed replication entry")
                continue
            decoded.append((sids, times, values))
            wanted.update(sids)
        refs = await self._refs_of(wanted) if wanted else {}
        now = self._clock()
        items = [
            (ref, t, v)
            for sids, times, values in decoded
            for sid, t, v in zip(sids, times, values, strict=True)
            if (ref := refs.get(sid)) is not None
        ]
        if items:
            self.windows.add(items, now, replace=False)
            self.metrics.applied.inc(len(items))
        self.applied_entries += len(decoded)
        last_id, fields = entries[-1]
        self.last_id = last_id.decode() if isinstance(last_id, bytes) else str(last_id)
        self.last_n = int(fields.get(b"n", self.last_n))
        self._last_time = parse_id(self.last_id)[0] / 1000
        self.metrics.lag.set(max(0.0, now - self._last_time))
        self._maybe_evict()
        if items:
            for notify in self.listeners:
                notify()

    async def _refs_of(self, sids: set[int]) -> dict[int, SeriesRef]:
        out: dict[int, SeriesRef] = {}
        missing = []
        for sid in sids:
            ref = self.windows.ref(sid) or self._refs.get(sid)
            if ref is None:
                missing.append(sid)
            else:
                out[sid] = ref
        if missing:
            rows = await self._pool.fetch(_SERIES, missing)
            if len(self._refs) + len(rows) > _REF_CACHE:
                self._refs.clear()
            for r in rows:
                ref = SeriesRef(r["series_id"], r["agent_id"], r["name"], r["labels"])
                out[ref.series_id] = self._refs[ref.series_id] = ref
        return out

    def _maybe_evict(self) -> None:
        now = self._clock()
        if now - self._last_evict >= _EVICT_EVERY_S:
            self._last_evict = now
            self.windows.evict(now)

    # -- gaps ----------------------------------------------------------------------------------

    def _gap(self, since: float, why: str) -> None:
        self._log.warning("replication gap (%s): back-filling the windows from PostgreSQL", why)
        self._gap_since = since if self._gap_since is None else min(self._gap_since, since)
        if self._gap_task is None or self._gap_task.done():
            self._gap_task = asyncio.get_running_loop().create_task(
                self._backfill_gaps(), name="replicate-gap-backfill"
            )

    async def _backfill_gaps(self) -> None:
        while self._gap_since is not None:
            since, self._gap_since = self._gap_since, None
            span = min(self.windows.window_seconds, self._clock() - since + _GAP_SLACK_S)
            span = max(span, _GAP_SLACK_S) if math.isfinite(span) else _GAP_SLACK_S
            try:
                result = await WindowBackfill(self._pool, self.windows, clock=self._clock).run(span)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                self._log.warning("replication gap back-fill failed; retrying: %s", exc)
                self._gap_since = since if self._gap_since is None else min(self._gap_since, since)
                await asyncio.sleep(self.retry_s * 4)
                continue
            self.gap_backfills += 1
            self.metrics.gap_backfills.inc()
            self._log.info(
                "replication gap back-filled: %d samples of %d series (last %.0f s) in %.2f s",
                result.samples,
                result.series,
                span,
                result.duration_s,
            )
            for notify in self.listeners:
                notify()


def _dedicated(client: aioredis.Redis, socket_timeout_s: float) -> aioredis.Redis:
    """A client with its own small pool on the same server as ``client`` (for XREAD BLOCK)."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs["socket_timeout"] = socket_timeout_s
    own = aioredis.ConnectionPool(
        connection_class=pool.connection_class, max_connections=2, **kwargs
    )
    return aioredis.Redis.from_pool(own)
