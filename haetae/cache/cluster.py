"""The L2's auto-pipelined hot path on a Redis Cluster: one lean RESP connection per master.

The counterpart of :class:`haetae.cache.resp.FastPipeline` for ``RedisCluster`` clients. Every
command queued in one event-loop iteration is routed by its key's slot (CRC16, redis-py's
``key_slot``) to the master serving it, and each master gets one ``transport.write`` per
iteration on its own ``asyncio.Protocol`` connection. GETs travel as individual pipelined GETs
(an MGET would have to be split by slot, and keys of a cache rarely share one: measured, see
docs/performance.md).

The slot map is redis-py's own (``CLUSTER SLOTS`` through the client's ``NodesManager``), loaded
before the first command and refreshed after a MOVED reply or a lost node connection.

Redirections: ``MOVED slot host:port`` points the slot at the new master, marks the map stale and
retries that command there once; ``ASK slot host:port`` sends ``ASKING`` and the command to the
target (once) without touching the map. A second redirection for the same command is returned
to the caller as the ``ResponseError`` Redis sent.

Failures, as on the standalone path: a lost node connection fails the commands in flight on it
with redis-py's ``ConnectionError`` (the next command reconnects, after a map refresh); a node
that stops answering for ``command_timeout_s`` is aborted the same way; a cancelled future is
skipped when its reply arrives.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from haetae.cache import resp

_ASKING = resp.pack(("ASKING",))
_REFRESH_MIN_INTERVAL_S = 0.1

# A queued command: (args, future, redirected already, send ASKING first).
_Item = tuple[tuple[Any, ...], "asyncio.Future[Any]", bool, bool]


def supports(client: Any) -> bool:
    """Whether ``client`` (a RedisCluster) connects in a way the lean connections can copy."""
    if not isinstance(client, RedisCluster):
        return False
    kw = client.connection_kwargs
    return not (
        kw.get("connection_class", Connection) is not Connection
        or kw.get("credential_provider") is not None
        or kw.get("decode_responses")
        or kw.get("redis_connect_func") is not None  # READONLY for replica reads
        or client.read_from_replicas
        or client.load_balancing_strategy is not None
        or kw.get("protocol") not in (None, 2, "2")
    )


class _Protocol(resp._Protocol):
    """A node connection: in-flight entries are queued items (or None for an ASKING's +OK)."""

    owner: _Node  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        try:
            reader.feed(data)
            pending = self.pending
            n = 0
            while True:
                reply = reader.gets()
                if reply is False:
                    break
                n += 1
                item = pending.popleft()
                if item is None:
                    continue  # ASKING's reply (an error shows again on the command itself)
                fut = item[1]
                if fut.done():
                    continue
                if isinstance(reply, ResponseError):
                    if not item[2]:
                        msg = str(reply)
                        if msg.startswith(("MOVED ", "ASK ")):
                            self.owner.cluster._redirect(item, msg, self.owner)
                            continue
                    fut.set_exception(reply)
                else:
                    fut.set_result(reply)
            self.progress += n
        except Exception as exc:  # a protocol error or a reply without a command: unusable
            self.fail(RedisConnectionError(f"protocol error: {exc!r}"))
            if self.transport is not None:
                self.transport.abort()

    def fail(self, error: Exception) -> None:
        self.closed = True
        self.owner._lost(self)
        pending, self.pending = self.pending, collections.deque()
        for item in pending:
            if item is not None and not item[1].done():
                item[1].set_exception(error)


class _Node:
    """One master: its connection, its watchdog and the items waiting for this pass' write."""

    def __init__(self, cluster: ClusterPipeline, host: str, port: int) -> None:
        self.cluster = cluster
        self.host = host
        self.port = port
        self.out: list[_Item] = []
        self.conn: _Protocol | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.watchdog: asyncio.TimerHandle | None = None

    def send(self) -> None:
        out = self.out
        if not out:
            return
        conn = self.conn
        if conn is None or conn.closed:
            if self.connecting is None:
                self.connecting = asyncio.get_running_loop().create_task(self._connect())
            return
        self.out = []
        parts: list[bytes] = []
        entries: list[Any] = []
        for item in out:
            args, fut, _, asking = item
            if fut.done():
                continue
            if args[0] == "GET" and len(args) == 2:
                key = args[1]
                k = key if type(key) is bytes else resp._arg(key)
                data = b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(k), k)
            else:
                try:
                    data = resp.pack(args)
                except TypeError as exc:
                    fut.set_exception(exc)
                    continue
            if asking:
                parts.append(_ASKING)
                entries.append(None)
            parts.append(data)
            entries.append(item)
        if not entries:
            return
        if not conn.pending and self.watchdog is None:
            self._arm_watchdog(conn)
        conn.pending.extend(entries)
        assert conn.transport is not None
        conn.transport.write(b"".join(parts))
        self.cluster.batches += 1

    def fail_out(self, error: Exception) -> None:
        out, self.out = self.out, []
        for item in out:
            if not item[1].done():
                item[1].set_exception(error)

    async def _connect(self) -> None:
        cluster = self.cluster
        loop = asyncio.get_running_loop()
        conn = _Protocol(self)  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(cluster.connect_timeout_s):
                await loop.create_connection(lambda: conn, self.host, self.port)
                if cluster.password is not None:
                    auth = (
                        ("AUTH", cluster.username, cluster.password)
                        if cluster.username
                        else ("AUTH", cluster.password)
                    )
                    assert conn.transport is not None
                    fut = loop.create_future()
                    conn.pending.append((auth, fut, True, False))
                    conn.transport.write(resp.pack(auth))
                    await fut
        except BaseException as exc:
            self.connecting = None
            if conn.transport is not None:
                conn.transport.abort()
            if isinstance(exc, TimeoutError):
                err: Exception = RedisTimeoutError(f"timed out connecting to {self.name}")
            elif isinstance(exc, ResponseError | RedisConnectionError):
                err = exc
            elif isinstance(exc, OSError):
                err = RedisConnectionError(f"cannot connect to {self.name}: {exc}")
            else:
                err = RedisConnectionError(f"connecting to {self.name} was cancelled")
            cluster._stale = True
            self.fail_out(err)
            if not isinstance(exc, Exception):
                raise
            return
        self.connecting = None
        if cluster._closed:
            assert conn.transport is not None
            conn.transport.close()
            self.fail_out(RedisConnectionError("the L2 client is closed"))
            return
        self.conn = conn
        self.send()

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    def _lost(self, conn: resp._Protocol) -> None:
        if self.conn is conn:
            self.conn = None
            self.cluster._stale = True  # the node may be gone: re-read the map first
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None

    def _arm_watchdog(self, conn: _Protocol) -> None:
        timeout = self.cluster.command_timeout_s
        interval = min(1.0, timeout / 2)
        seen = conn.progress
        idle_since = asyncio.get_running_loop().time()

        def check() -> None:
            nonlocal seen, idle_since
            self.watchdog = None
            if conn.closed or not conn.pending:
                return
            loop = asyncio.get_running_loop()
            now = loop.time()
            if conn.progress != seen:
                seen, idle_since = conn.progress, now
            elif now - idle_since >= timeout:
                conn.fail(RedisTimeoutError(f"{self.name} did not answer in time"))
                if conn.transport is not None:
                    conn.transport.abort()
                return
            self.watchdog = loop.call_later(interval, check)

        self.watchdog = asyncio.get_running_loop().call_later(interval, check)

    def close(self) -> None:
        if self.connecting is not None:
            self.connecting.cancel()
        conn, self.conn = self.conn, None
        if conn is not None and conn.transport is not None:
            conn.transport.close()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        self.fail_out(RedisConnectionError("the L2 client is closed"))


class ClusterPipeline(resp.CommandQueue):
    """Drop-in for :class:`haetae.cache.l2.AutoPipeline` on a Redis Cluster (masters only)."""

    def __init__(
        self,
        client: RedisCluster,
        *,
        max_batch: int = 256,
        command_timeout_s: float | None = None,
    ) -> None:
        kw = client.connection_kwargs
        self.client = client
        self.username: str | None = kw.get("username")
        self.password: str | None = kw.get("password")
        self.connect_timeout_s: float = kw.get("socket_connect_timeout") or 5.0
        self.command_timeout_s: float = command_timeout_s or kw.get("socket_timeout") or 5.0
        self.max_batch = max_batch  # kept for the interface: GETs are not merged here
        self.batches = 0
        self.refreshes = 0
        super().__init__()
        self._slots: list[_Node | None] | None = None
        self._nodes: dict[tuple[str, int], _Node] = {}
        self._dirty: list[_Node] = []  # nodes with redirected items to send
        self._stale = False
        self._last_refresh = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None
        self._closed = False

    # -- sending -------------------------------------------------------------------------------
    def _flush(self) -> None:
        self._scheduled = False
        if self._closed:
            self._fail_queue(RedisConnectionError("the L2 client is closed"))
            return
        if self._refreshing is not None:
            return  # the refresh flushes when it is done
        slots = self._slots
        if slots is None or (
            self._stale
            and asyncio.get_running_loop().time() - self._last_refresh >= _REFRESH_MIN_INTERVAL_S
        ):
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
            return
        touched, self._dirty = self._dirty, []
        queue, self._queue = self._queue, []
        for args, fut in queue:
            if fut.done():
                continue  # cancelled before it was sent
            try:
                key = args[1]
                node = slots[key_slot(key if type(key) is bytes else resp._arg(key))]
            except (IndexError, TypeError) as exc:
                fut.set_exception(
                    ResponseError(f"no key to route {args[0]!r} on a cluster")
                    if isinstance(exc, IndexError)
                    else exc
                )
                continue
            if node is None:
                fut.set_exception(RedisConnectionError("slot not served by any master"))
                continue
            if not node.out:
                touched.append(node)
            node.out.append((args, fut, False, False))
        for node in touched:
            node.send()

    def _redirect(self, item: _Item, msg: str, source: _Node) -> None:
        """MOVED / ASK for ``item`` (not yet redirected): queue it once on the target."""
        try:
            kind, slot_s, addr = msg.split(" ", 2)
            host, _, port_s = addr.rpartition(":")
            slot, port = int(slot_s), int(port_s)
        except ValueError:
            item[1].set_exception(ResponseError(msg))
            return
        if self._closed:
            item[1].set_exception(RedisConnectionError("the L2 client is closed"))
            return
        node = self._node(host or source.host, port)
        if kind == "MOVED":
            if self._slots is not None and 0 <= slot < REDIS_CLUSTER_HASH_SLOTS:
                self._slots[slot] = node
            self._stale = True
            redirected: _Item = (item[0], item[1], True, False)
        else:
            redirected = (item[0], item[1], True, True)
        if not node.out:
            self._dirty.append(node)
        node.out.append(redirected)
        self._schedule()

    def _fail_queue(self, error: Exception) -> None:
        queue, self._queue = self._queue, []
        for _, fut in queue:
            if not fut.done():
                fut.set_exception(error)
        dirty, self._dirty = self._dirty, []
        for node in dirty:
            node.fail_out(error)

    # -- the slot map ------------------------------------------------------------------------------
    def _node(self, host: str, port: int) -> _Node:
        node = self._nodes.get((host, port))
        if node is None:
            node = self._nodes[(host, port)] = _Node(self, host, port)
        return node

    async def _refresh(self) -> None:
        """(Re)load the slot map through redis-py's NodesManager (``CLUSTER SLOTS``)."""
        loop = asyncio.get_running_loop()
        self._stale = False
        try:
            try:
                async with asyncio.timeout(self.connect_timeout_s + self.command_timeout_s):
                    if self._slots is None:
                        await self.client.initialize()
                    else:
                        await self.client.nodes_manager.initialize()
            finally:
                self._last_refresh = loop.time()
                self._refreshing = None
        except BaseException as exc:
            self._stale = True
            if isinstance(exc, RedisError):
                err: Exception = exc
            elif isinstance(exc, TimeoutError):
                err = RedisTimeoutError("timed out reading the cluster's slot map")
            else:
                err = RedisConnectionError(f"cannot read the cluster's slot map: {exc!r}")
            self._fail_queue(err)
            if not isinstance(exc, Exception):
                raise
            return
        self.refreshes += 1
        slots: list[_Node | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        for slot, nodes in self.client.nodes_manager.slots_cache.items():
            if nodes:
                slots[slot] = self._node(nodes[0].host, int(nodes[0].port))
        self._slots = slots
        if self._queue or self._dirty:
            self._flush()

    async def aclose(self) -> None:
        self._closed = True
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
        for node in self._nodes.values():
            node.close()
        connecting = [n.connecting for n in self._nodes.values() if n.connecting is not None]
        await asyncio.gather(*connecting, return_exceptions=True)
        self._fail_queue(RedisConnectionError("the L2 client is closed"))
