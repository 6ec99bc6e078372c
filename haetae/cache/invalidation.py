"""Durable invalidation: applied to L2, then appended to a Redis Stream that every L1 follows.

Each L1 (a :class:`InvalidationBus` with its :class:`LayeredCache`) reads the stream with
``XREAD BLOCK``, applies entries, and records the last id it applied in a shared hash; it also
heartbeats into a sorted set of connected nodes. A publisher can then wait until every connected
node has applied its entry (``wait_applied``), which is what makes "no L1 serves a value
invalidated before the call returned" hold.

After a disconnect a follower resumes from its last id. Entries are numbered by a counter written
in the same script as the XADD, so a follower that finds a gap in the numbers knows the stream
was trimmed (MAXLEN) past what it had read: it cannot know what it missed and flushes its L1.
(Comparing the first entry's id with the last id seen cannot tell "trimmed" from "nothing was
older": the numbering can.)

The same stream carries warm-ups: an entry with a ``w`` field (a JSON list of keys, and no
``k``/``t``/``p``) asks every follower to copy those keys' values from L2 into its L1 before it
acknowledges the entry, so ``wait_applied`` on a warm entry means "every connected L1 holds what
L2 had". A follower that predates warm entries reads one as an empty invalidation (harmless),
and entries without ``w`` read as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import RedisError

from haetae.cache import keys as ck
from haetae.cache import resp
from haetae.cache.l2 import RedisClient
from haetae.cache.layered import LayeredCache

log = logging.getLogger("haetae.cache.invalidation")

LAYERS = frozenset({"l1", "l2"})


class InvalidationError(Exception):
    """The invalidation could not be recorded (Redis unreachable): retry it."""


def parse_id(entry_id: str | bytes) -> tuple[int, int]:
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class Invalidation:
    keys: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()

    def args(self, origin: str) -> list[bytes]:
        return [
            orjson.dumps(self.keys),
            orjson.dumps(self.tags),
            orjson.dumps(self.prefixes),
            origin.encode(),
        ]

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> Invalidation:
        def get(name: bytes) -> tuple[str, ...]:
            raw = fields.get(name)
            return tuple(orjson.loads(raw)) if raw else ()

        return cls(get(b"k"), get(b"t"), get(b"p"))


def warm_keys(fields: dict[bytes, bytes]) -> tuple[str, ...] | None:
    """The keys a warm entry names; None for an invalidation entry."""
    raw = fields.get(b"w")
    if raw is None:
        return None
    keys = orjson.loads(raw)
    return tuple(k for k in keys if isinstance(k, str)) if isinstance(keys, list) else ()


# Keys per warm entry: one follower's L2 read (an MGET) per entry stays small.
WARM_ENTRY_KEYS = 500


@dataclass(slots=True)
class WaitResult:
    entry_id: str
    applied: list[str]
    pending: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.pending


def default_node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class InvalidationBus:
    """Publishes invalidations and keeps one L1 in step with everyone else's."""

    def __init__(
        self,
        client: RedisClient,
        cache: LayeredCache,
        *,
        node_id: str | None = None,
        maxlen: int = 10_000,
        block_ms: int = 500,
        heartbeat_s: float = 1.0,
        node_stale_after_s: float = 5.0,
        retry_s: float = 0.2,
        exact_trim: bool = False,
    ) -> None:
        self.client = client
        self.cache = cache
        self.node_id = node_id or default_node_id()
        self.maxlen = maxlen
        self.block_ms = block_ms
        self.heartbeat_s = heartbeat_s
        self.node_stale_after_s = node_stale_after_s
        self.retry_s = retry_s
        # MAXLEN ~ (whole stream nodes) is much cheaper; exact trimming is for tests.
        self.exact_trim = exact_trim
        self.last_id: str | None = None
        self.last_seq = 0
        self.connected = False
        self.applied_entries = 0
        self.warmed_keys = 0
        self.flushes = 0
        self._task: asyncio.Task[None] | None = None
        # The follower's own lean connection (standalone Redis): its XREAD BLOCK, acks and
        # heartbeats skip redis-py's per-call overhead; None: redis-py (Cluster, TLS...).
        self._stream: resp.FastPipeline | None = None
        self._stopping = False
        self._last_beat = 0.0
        self._ready = asyncio.Event()

    # -- publishing ----------------------------------------------------------------------------
    async def invalidate(
        self,
        keys: Sequence[str] = (),
        tags: Sequence[str] = (),
        prefixes: Sequence[str] = (),
        *,
        layers: Iterable[str] = LAYERS,
    ) -> str | None:
        """Apply to L2 and the local L1, append to the stream; the entry id (None: L2 only)."""
        layers = frozenset(layers)
        inv = Invalidation(tuple(keys), tuple(tags), tuple(prefixes))
        l2 = self.cache.l2 if "l2" in layers else None
        try:
            if l2 is not None:
                tagged = await l2.delete_tags(inv.tags)
                for prefix in inv.prefixes:
                    await l2.delete_prefix(prefix)
                if tagged:
                    # Other L1s learn the keys behind the tags from the entry, not only the tags.
                    inv = Invalidation(
                        tuple(dict.fromkeys(inv.keys + tuple(tagged))), inv.tags, inv.prefixes
                    )
            if "l1" not in layers:
                if l2 is not None:
                    await l2.delete(keys)
                return None
            append = (
                _APPEND,
                2,
                ck.INVALIDATION_STREAM,
                ck.INVALIDATION_SEQ,
                "=" if self.exact_trim else "~",
                self.maxlen,
                *inv.args(self.node_id),
            )
            fast = self._fast_path()
            if fast is not None:
                # One round trip: the L2 DEL and the append go out in one write on the L2's
                # connection to the same server, which runs them in order, so no L1 can read
                # the entry before the values are gone from L2. The local L1 is cleared first,
                # in the same step as queueing the DEL: any later local miss reads L2 after it.
                self.cache.apply_invalidation(inv.keys, inv.tags, inv.prefixes)
                futs: list[Awaitable[Any]] = []
                if l2 is not None and keys:
                    futs.append(fast.execute("DEL", *(ck.value_key(k) for k in keys)))
                futs.append(fast.execute("EVAL", *append))
                entry_id = (await asyncio.gather(*futs))[-1]
            else:
                if l2 is not None:
                    await l2.delete(keys)
                self.cache.apply_invalidation(inv.keys, inv.tags, inv.prefixes)
                entry_id = await self.client.eval(*append)  # type: ignore[arg-type]
        except RedisError as exc:
            raise InvalidationError(f"cannot record the invalidation: {exc}") from exc
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def warm(self, keys: Sequence[str]) -> str | None:
        """Ask every other L1 to copy ``keys`` from L2 (entries of ``WARM_ENTRY_KEYS`` keys);
        the last entry's id, to ``wait_applied`` on (None: no keys)."""
        entry_id: Any = None
        try:
            for start in range(0, len(keys), WARM_ENTRY_KEYS):
                chunk = orjson.dumps(list(keys[start : start + WARM_ENTRY_KEYS]))
                entry_id = await self.client.eval(
                    _APPEND_WARM,
                    2,
                    ck.INVALIDATION_STREAM,
                    ck.INVALIDATION_SEQ,
                    "=" if self.exact_trim else "~",
                    self.maxlen,
                    chunk,
                    self.node_id,
                )
        except RedisError as exc:
            raise InvalidationError(f"cannot record the warm-up: {exc}") from exc
        if entry_id is None:
            return None
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def _fast_path(self) -> resp.FastPipeline | None:
        """The L2's lean connection, when it reaches the same Redis as the stream's client."""
        l2 = self.cache.l2
        pipeline = l2.pipeline if l2 is not None else None
        if isinstance(pipeline, resp.FastPipeline) and pipeline.serves(self.client):
            return pipeline
        return None

    async def invalidate_and_wait(
        self,
        keys: Sequence[str] = (),
        tags: Sequence[str] = (),
        prefixes: Sequence[str] = (),
        *,
        layers: Iterable[str] = LAYERS,
        timeout_s: float = 2.0,
    ) -> WaitResult | None:
        """Invalidate, wait for every connected L1, then delete from L2 once more.

        The second delete closes the load/invalidate race: a process that read the origin
        before the change but wrote L2 after the first delete (and before its L1 applied the
        entry, after which its in-flight loads no longer store) would otherwise leave the old
        value in L2 for everyone.
        """
        layers = frozenset(layers)
        entry_id = await self.invalidate(keys, tags, prefixes, layers=layers)
        if entry_id is None:
            return None
        result = await self.wait_applied(entry_id, timeout_s)
        l2 = self.cache.l2
        if "l2" in layers and l2 is not None:
            try:
                await l2.delete(keys)
                for prefix in prefixes:
                    await l2.delete_prefix(prefix)
            except RedisError as exc:
                raise InvalidationError(f"cannot finish the invalidation: {exc}") from exc
        return result

    async def connected_nodes(self) -> list[str]:
        cutoff = time.time() - self.node_stale_after_s
        raw: list[bytes] = await self.client.zrangebyscore(ck.NODES, cutoff, "+inf")  # type: ignore[assignment]
        return sorted(n.decode() if isinstance(n, bytes) else n for n in raw)

    async def wait_applied(
        self, entry_id: str, timeout_s: float = 2.0, poll_s: float = 0.002
    ) -> WaitResult:
        """Wait until every connected L1 has applied ``entry_id``; names the ones that did not."""
        target = parse_id(entry_id)
        deadline = time.monotonic() + timeout_s
        while True:
            nodes = await self.connected_nodes()
            pending = nodes
            if nodes:
                applied = await self.client.hmget(ck.APPLIED, nodes)
                pending = [
                    n
                    for n, a in zip(nodes, applied, strict=True)
                    if a is None or parse_id(a) < target
                ]
            done = [n for n in nodes if n not in pending]
            if not pending or time.monotonic() >= deadline:
                return WaitResult(entry_id, done, pending)
            await asyncio.sleep(poll_s)

    async def node_stats(self) -> dict[str, Any]:
        """The latest stats each connected node published with its heartbeat."""
        out: dict[str, Any] = {}
        for node in await self.connected_nodes():
            raw = await self.client.get(ck.node_stats_key(node))
            if raw:
                out[node] = orjson.loads(raw)
        return out

    # -- following -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start following; returns once the follower is positioned on the stream (or failing)."""
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 2.0)

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            task.cancel()
            # Bounded: a read stuck on a dead connection must not hold up shutdown.
            await asyncio.wait([task], timeout=1.0)
            if not task.done():
                log.warning(
                    "the invalidation follower did not stop within 1 s (in %s)", _where(task)
                )
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()
        with contextlib.suppress(RedisError, OSError):
            await self.client.zrem(ck.NODES, self.node_id)
            await self.client.hdel(ck.APPLIED, self.node_id)
            await self.client.delete(ck.node_stats_key(self.node_id))

    async def __aenter__(self) -> InvalidationBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        # The flag backs up cancel(): a cancellation has been seen to get lost inside a
        # redis-py read (CPython 3.11); the loop then ends at the next error or entry.
        while not self._stopping:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning("invalidation stream lost (%r); will catch up", exc)
                self.connected = False
                stream, self._stream = self._stream, None
                if stream is not None:
                    await stream.aclose()  # its state is unknown (a timed-out XREAD in flight)
                if not self._stopping:
                    await asyncio.sleep(self.retry_s)

    async def _follow(self) -> None:
        # Every round trip is bounded: a connection that silently stopped answering (a
        # partition, a server restarted under it) must not park the follower for ever.
        limit = self.block_ms / 1000 + 2.0
        async with asyncio.timeout(limit):
            await self._position()
            await self._heartbeat(force=True)
        self.connected = True
        self._ready.set()
        ack = False
        if self._stream is None and resp.supports(self.client):
            self._stream = resp.FastPipeline(self.client, command_timeout_s=limit)
        while not self._stopping:
            assert self.last_id is not None
            # One round trip per batch: the ack of the batch just applied and a heartbeat when
            # one is due travel in front of the next XREAD BLOCK, so the follower is waiting
            # on the stream again right away (no ack/heartbeat round trips between reads).
            commands = self._heartbeat_commands()
            if ack:
                commands.append(("HSET", ck.APPLIED, self.node_id, self.last_id))
            stream = self._stream
            if stream is not None:
                futs = [stream.execute(*c) for c in commands]
                futs.append(
                    stream.execute(
                        "XREAD", "COUNT", 1000, "BLOCK", self.block_ms,
                        "STREAMS", ck.INVALIDATION_STREAM, self.last_id,
                    )
                )  # fmt: skip
                async with asyncio.timeout(limit):
                    raw = (await asyncio.gather(*futs))[-1]
                entries: Any = (
                    [
                        (eid, dict(zip(f[::2], f[1::2], strict=True)))
                        for eid, f in raw[0][1]
                        if f is not None
                    ]
                    if raw
                    else []
                )
            else:
                pipe = self.client.pipeline(transaction=False)
                for c in commands:
                    pipe.execute_command(*c)
                pipe.xread({ck.INVALIDATION_STREAM: self.last_id}, count=1000, block=self.block_ms)
                async with asyncio.timeout(limit):
                    replies: Any = await pipe.execute()
                entries = replies[-1][0][1] if replies[-1] else []
            ack = False
            if entries:
                warm = self._apply(entries)
                if warm:
                    # Before the ack: a warm entry acknowledged is a warm-up done here.
                    async with asyncio.timeout(limit):
                        self.warmed_keys += await self.cache.fill_from_l2(warm)
                ack = True

    def _apply(self, entries: Any) -> list[str]:
        """Apply the invalidations of ``entries`` in order; the keys their warm entries name
        (read from L2 afterwards, so a value invalidated in the same batch is not brought back:
        its L2 copy was deleted before its entry was appended)."""
        first_seq = int(entries[0][1].get(b"n", 0))
        if first_seq > self.last_seq + 1:
            n = self.cache.flush_l1()
            self.flushes += 1
            log.warning(
                "L1 fell behind the invalidation stream's retention (entries %d..%d "
                "trimmed); flushed %d entries",
                self.last_seq + 1,
                first_seq - 1,
                n,
            )
        own = self.node_id.encode()
        warm: dict[str, None] = {}
        for _entry_id, fields in entries:
            if fields.get(b"o") == own:
                continue  # applied locally before it was appended
            keys = warm_keys(fields)
            if keys is not None:
                warm.update(dict.fromkeys(keys))
                continue
            inv = Invalidation.from_fields(fields)
            self.cache.apply_invalidation(inv.keys, inv.tags, inv.prefixes)
            self.applied_entries += 1
        self.last_seq = int(entries[-1][1].get(b"n", self.last_seq))
        last = entries[-1][0]
        self.last_id = last.decode() if isinstance(last, bytes) else last
        return list(warm)

    async def _position(self) -> None:
        if self.last_id is None:
            # A new L1 is empty: only what happens from now on concerns it.
            tail: Any = await self.client.xrevrange(ck.INVALIDATION_STREAM, count=1)
            if tail:
                self.last_id = tail[0][0].decode()
                self.last_seq = int(tail[0][1].get(b"n", 0))
            else:
                self.last_id = "0-0"
                self.last_seq = int(await self.client.get(ck.INVALIDATION_SEQ) or 0)
        else:
            seq = int(await self.client.get(ck.INVALIDATION_SEQ) or 0)
            if seq < self.last_seq:
                # Redis came back without the stream (restart without persistence, failover to
                # a replica that lagged): what was published meanwhile is unknowable.
                n = self.cache.flush_l1()
                self.flushes += 1
                log.warning("the invalidation stream was reset; flushed %d L1 entries", n)
                self.last_id, self.last_seq = "0-0", seq
        await self.client.hset(ck.APPLIED, self.node_id, self.last_id)

    async def _heartbeat(self, *, force: bool = False) -> None:
        commands = self._heartbeat_commands(force=force)
        if commands:
            pipe = self.client.pipeline(transaction=False)
            for c in commands:
                pipe.execute_command(*c)
            await pipe.execute()

    def _heartbeat_commands(self, *, force: bool = False) -> list[tuple[Any, ...]]:
        """The heartbeat's commands when one is due (else none)."""
        now = time.time()
        if not force and now - self._last_beat < self.heartbeat_s:
            return []
        self._last_beat = now
        snapshot = self.cache.stats.snapshot()
        snapshot["node"] = self.node_id
        snapshot["last_applied"] = self.last_id
        return [
            ("ZADD", ck.NODES, now, self.node_id),
            (
                "SET",
                ck.node_stats_key(self.node_id),
                orjson.dumps(snapshot),
                "EX",
                max(1, int(self.node_stale_after_s * 3)),
            ),
            # Forget nodes that stopped heartbeating long ago (crashed without stop()).
            ("ZREMRANGEBYSCORE", ck.NODES, "-inf", now - 60 * self.node_stale_after_s),
        ]


def _where(task: asyncio.Task[None]) -> str:
    """The innermost frames a task is suspended in (for the stuck-shutdown warning)."""
    frames = []
    coro: Any = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None)
        if frame is not None:
            frames.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None)
    return " > ".join(frames[-4:]) + f" awaiting {coro!r}"


# Number the entry and append it in one step (both keys share a cluster slot).
_APPEND = """
local n = redis.call('INCR', KEYS[2])
return redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], ARGV[2], '*',
    'n', n, 'k', ARGV[3], 't', ARGV[4], 'p', ARGV[5], 'o', ARGV[6])
"""

# A warm-up entry: numbered like the invalidations (so gaps stay detectable), keys under ``w``.
_APPEND_WARM = """
local n = redis.call('INCR', KEYS[2])
return redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], ARGV[2], '*',
    'n', n, 'w', ARGV[3], 'o', ARGV[4])
"""
