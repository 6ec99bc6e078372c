"""A lean RESP2 connection for the L2's auto-pipelined hot path (standalone Redis only).

redis-py's pipeline costs tens of microseconds of Python per batch and several per command
(command stack, encoders, a pooled connection checked out and in, a coroutine per read). Here
every command queued in one event-loop iteration is encoded and sent with one
``transport.write`` on one ``asyncio.Protocol`` connection; replies are parsed in
``data_received`` and resolve their futures in bulk. A run of consecutive GETs queued in the
same iteration travels as one MGET (order relative to other commands is kept, so a SET queued
before a GET is still seen by it). ``hiredis`` parses replies when it is installed.

Failure handling: a lost connection fails every command in flight with redis-py's
``ConnectionError`` (callers and the circuit breaker see a RedisError as before) and the next
command reconnects; a connection that stops answering for ``command_timeout_s`` is aborted the
same way. Callers bound each call themselves (the breaker's timeout): a cancelled future is
skipped when its reply arrives, so replies never shift onto the wrong command.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, cast

from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:  # optional: a C reply parser (pip install hiredis)
    import hiredis as _hiredis
except ImportError:  # pragma: no cover - depends on the environment
    _hiredis = None

HAVE_HIREDIS = _hiredis is not None

_CRLF = b"\r\n"


class _Incomplete(Exception):
    pass


class PyReader:
    """Incremental RESP2 reader with hiredis.Reader's ``feed``/``gets`` interface."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos >= len(self._buf):
            self._buf = bytes(data)
        else:
            self._buf = self._buf[self._pos :] + data
        self._pos = 0

    def gets(self) -> Any:
        """The next complete reply, or False when more data is needed (as hiredis)."""
        buf = self._buf
        if self._pos >= len(buf):
            return False
        try:
            reply, self._pos = _parse(buf, self._pos)
        except _Incomplete:
            return False
        return reply


def _parse(buf: bytes, pos: int) -> tuple[Any, int]:
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        stop = end + 2 + n
        if stop + 2 > len(buf):
            raise _Incomplete
        return buf[end + 2 : stop], stop + 2
    if kind == 42:  # * array (MGET: bulk strings, parsed inline)
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        pos = end + 2
        out: list[Any] = []
        append = out.append
        size = len(buf)
        for _ in range(n):
            if pos < size and buf[pos] == 36:
                end = buf.find(_CRLF, pos)
                if end < 0:
                    raise _Incomplete
                m = int(buf[pos + 1 : end])
                if m < 0:
                    append(None)
                    pos = end + 2
                    continue
                stop = end + 2 + m
                if stop + 2 > size:
                    raise _Incomplete
                append(buf[end + 2 : stop])
                pos = stop + 2
            else:
                item, pos = _parse(buf, pos)
                append(item)
        return out, pos
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 43:  # + simple string
        return buf[pos + 1 : end], end + 2
    if kind == 45:  # - error: returned as a value, raised for its own command only
        return ResponseError(buf[pos + 1 : end].decode(errors="replace")), end + 2
    raise RedisConnectionError(f"protocol error: unexpected reply type {chr(kind)!r}")


def _reader() -> Any:
    if _hiredis is not None:
        return _hiredis.Reader(replyError=ResponseError)
    return PyReader()


def _arg(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):
        return a.encode()
    if isinstance(a, int):
        return b"%d" % a
    if isinstance(a, float):
        return repr(a).encode()
    if isinstance(a, (bytearray, memoryview)):
        return bytes(a)
    raise TypeError(f"cannot send {type(a).__name__} to Redis")


def pack(args: tuple[Any, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg(a)
        parts.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(parts)


def _resolve(fut: asyncio.Future[Any], reply: Any) -> None:
    if fut.done():  # the caller gave up (timeout, cancellation)
        return
    if isinstance(reply, Exception):
        fut.set_exception(reply)
    else:
        fut.set_result(reply)


class _Protocol(asyncio.Protocol):
    """One connection: FIFO of in-flight entries, each a future or a list of futures (MGET)."""

    def __init__(self, owner: FastPipeline) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque[Any] = collections.deque()
        self.reader = _reader()
        self.closed = False
        self.progress = 0  # replies received; the watchdog checks it moves

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

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
                entry = pending.popleft()
                if type(entry) is list:
                    if type(reply) is list and len(reply) == len(entry):
                        for fut, value in zip(entry, reply, strict=True):
                            if not fut.done():
                                fut.set_result(value)
                    else:
                        for fut in entry:
                            _resolve(fut, reply if isinstance(reply, Exception) else _BAD_REPLY)
                else:
                    _resolve(entry, reply)
            self.progress += n
        except Exception as exc:  # a protocol error or a reply without a command: unusable
            self.fail(RedisConnectionError(f"protocol error: {exc!r}"))
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed by server'}"))

    def fail(self, error: Exception) -> None:
        self.closed = True
        self.owner._lost(self)
        pending, self.pending = self.pending, collections.deque()
        for entry in pending:
            for fut in entry if type(entry) is list else (entry,):
                if not fut.done():
                    fut.set_exception(error)


_BAD_REPLY = ResponseError("unexpected reply to MGET")


def supports(client: Any) -> bool:
    """Whether ``client`` (a redis.asyncio.Redis) connects in a way this module can copy."""
    pool = getattr(client, "connection_pool", None)
    if pool is None or pool.connection_class not in (Connection, UnixDomainSocketConnection):
        return False
    kw = pool.connection_kwargs
    return not (
        kw.get("credential_provider") is not None
        or kw.get("decode_responses")
        or kw.get("redis_connect_func") is not None
    )


class CommandQueue:
    """Commands queued during one event-loop iteration and flushed together by ``_flush``
    (scheduled once per iteration): the auto-pipelining shared by every L2 transport."""

    def __init__(self) -> None:
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._scheduled = False

    def execute(self, *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def get(self, key: str) -> asyncio.Future[Any]:
        """``execute("GET", key)`` without the varargs."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append((("GET", key), fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        raise NotImplementedError


class FastPipeline(CommandQueue):
    """Drop-in for :class:`haetae.cache.l2.AutoPipeline` on a standalone Redis."""

    def __init__(
        self,
        client: Any,
        *,
        max_batch: int = 256,
        command_timeout_s: float | None = None,
    ) -> None:
        kw = client.connection_pool.connection_kwargs
        self.path: str | None = kw.get("path")
        self.host: str = kw.get("host", "localhost")
        self.port: int = int(kw.get("port", 6379))
        self.db = int(kw.get("db") or 0)
        self.username: str | None = kw.get("username")
        self.password: str | None = kw.get("password")
        self.connect_timeout_s: float = kw.get("socket_connect_timeout") or 5.0
        self.command_timeout_s: float = command_timeout_s or kw.get("socket_timeout") or 5.0
        self.max_batch = max_batch
        self.batches = 0
        super().__init__()
        self._conn: _Protocol | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    def serves(self, client: Any) -> bool:
        """Whether ``client`` (another redis-py client) talks to the same server and database."""
        if not supports(client):
            return False
        kw = client.connection_pool.connection_kwargs
        if int(kw.get("db") or 0) != self.db:
            return False
        if self.path is not None:
            return bool(kw.get("path") == self.path)
        return (kw.get("host", "localhost"), int(kw.get("port", 6379))) == (self.host, self.port)

    # -- sending -------------------------------------------------------------------------------
    def _flush(self) -> None:
        self._scheduled = False
        conn = self._conn
        if conn is None or conn.closed:
            if self._closed:
                self._fail_queue(RedisConnectionError("the L2 client is closed"))
            elif self._connecting is None:
                self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return
        queue, self._queue = self._queue, []
        parts: list[bytes] = []
        entries: list[Any] = []
        keys: list[bytes] = []
        futs: list[asyncio.Future[Any]] = []
        max_batch = self.max_batch
        for args, fut in queue:
            if fut.done():
                continue  # cancelled before it was sent
            if args[0] == "GET" and len(args) == 2:
                key = args[1]
                keys.append(key if type(key) is bytes else _arg(key))
                futs.append(fut)
                if len(keys) >= max_batch:
                    self._add_mget(parts, entries, keys, futs)
                    keys, futs = [], []
                continue
            if keys:
                self._add_mget(parts, entries, keys, futs)
                keys, futs = [], []
            try:
                parts.append(pack(args))
            except TypeError as exc:
                fut.set_exception(exc)
                continue
            entries.append(fut)
        if keys:
            self._add_mget(parts, entries, keys, futs)
        if not entries:
            return
        if not conn.pending and self._watchdog is None:
            self._arm_watchdog(conn)
        conn.pending.extend(entries)
        assert conn.transport is not None
        conn.transport.write(b"".join(parts))
        self.batches += 1

    @staticmethod
    def _add_mget(
        parts: list[bytes],
        entries: list[Any],
        keys: list[bytes],
        futs: list[asyncio.Future[Any]],
    ) -> None:
        if len(keys) == 1:
            k = keys[0]
            parts.append(b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(k), k))
            entries.append(futs[0])
            return
        out = [b"*%d\r\n$4\r\nMGET\r\n" % (len(keys) + 1)]
        out.extend(b"$%d\r\n%b\r\n" % (len(k), k) for k in keys)
        parts.append(b"".join(out))
        entries.append(futs)

    def _fail_queue(self, error: Exception) -> None:
        queue, self._queue = self._queue, []
        for _, fut in queue:
            if not fut.done():
                fut.set_exception(error)

    # -- connection ------------------------------------------------------------------------------
    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        conn = _Protocol(self)
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                if self.path is not None:
                    await loop.create_unix_connection(lambda: conn, self.path)
                else:
                    await loop.create_connection(lambda: conn, self.host, self.port)
                setup: list[tuple[Any, ...]] = []
                if self.password is not None:
                    setup.append(
                        ("AUTH", self.username, self.password)
                        if self.username
                        else ("AUTH", self.password)
                    )
                if self.db:
                    setup.append(("SELECT", self.db))
                if setup:
                    assert conn.transport is not None
                    futs = [loop.create_future() for _ in setup]
                    conn.pending.extend(futs)
                    conn.transport.write(b"".join(pack(a) for a in setup))
                    for f in futs:
                        await f
        except BaseException as exc:
            self._connecting = None
            if conn.transport is not None:
                conn.transport.abort()
            if isinstance(exc, TimeoutError):
                err: Exception = RedisTimeoutError("timed out connecting to Redis")
            elif isinstance(exc, ResponseError | RedisConnectionError):
                err = exc
            elif isinstance(exc, OSError):
                err = RedisConnectionError(f"cannot connect to Redis: {exc}")
            else:
                err = RedisConnectionError("connecting to Redis was cancelled")
            self._fail_queue(err)
            if not isinstance(exc, Exception):
                raise
            return
        self._connecting = None
        if self._closed:
            assert conn.transport is not None
            conn.transport.close()
            self._fail_queue(RedisConnectionError("the L2 client is closed"))
            return
        self._conn = conn
        if self._queue:
            self._flush()

    def _lost(self, conn: _Protocol) -> None:
        if self._conn is conn:
            self._conn = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _arm_watchdog(self, conn: _Protocol) -> None:
        interval = min(1.0, self.command_timeout_s / 2)
        seen = conn.progress
        idle_since = asyncio.get_running_loop().time()

        def check() -> None:
            nonlocal seen, idle_since
            self._watchdog = None
            if conn.closed or not conn.pending:
                return
            loop = asyncio.get_running_loop()
            now = loop.time()
            if conn.progress != seen:
                seen, idle_since = conn.progress, now
            elif now - idle_since >= self.command_timeout_s:
                # Redis stopped answering: fail what is in flight and start afresh.
                conn.fail(RedisTimeoutError("Redis did not answer in time"))
                if conn.transport is not None:
                    conn.transport.abort()
                return
            self._watchdog = loop.call_later(interval, check)

        self._watchdog = asyncio.get_running_loop().call_later(interval, check)

    async def aclose(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            conn.transport.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._fail_queue(RedisConnectionError("the L2 client is closed"))
