"""The agent's L1 over the Redis protocol (RESP2 and RESP3) on a unix socket, optionally also a
loopback TCP port, so any Redis client in the app process can use it.

Commands: PING, GET, SET key value [EX s|PX ms] [NX], DEL, MGET, EXISTS, TTL, PTTL, plus tags:
``TAGSET key value ttl_ms tag [tag ...]`` (set with tags), ``TAGDEL tag [tag ...]`` and
``TAGKEYS tag``; HELLO, CLIENT, SELECT 0, COMMAND and QUIT for client handshakes.
Misses read through to L2, writes go through to it, deletions are published on the invalidation
stream so every other L1 drops the key too. Values are bytes; they are kept as latin-1 text so the
cache's JSON wire format carries them losslessly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from haetae.cache import InvalidationBus, InvalidationError, LayeredCache

log = logging.getLogger("haetae.agent.l1")

MAX_BULK = 64 * 1024 * 1024
MAX_ARGS = 1024 * 1024


class ProtocolError(Exception):
    """The client sent something that is not RESP: the connection is closed."""


class _Null:
    pass


NULL = _Null()


class _Error(str):
    pass


class _Status(str):
    pass


OK = _Status("OK")


def encode(value: Any, resp3: bool) -> bytes:
    if value is NULL or value is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    if isinstance(value, _Error):
        return b"-" + value.encode() + b"\r\n"
    if isinstance(value, _Status):
        return b"+" + value.encode() + b"\r\n"
    if isinstance(value, bool):
        return b":1\r\n" if value else b":0\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        value = value.encode("latin-1")
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, dict):
        head = b"%%%d\r\n" % len(value) if resp3 else b"*%d\r\n" % (2 * len(value))
        return head + b"".join(encode(k, resp3) + encode(v, resp3) for k, v in value.items())
    if isinstance(value, list | tuple):
        return b"*%d\r\n" % len(value) + b"".join(encode(v, resp3) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__}")


async def read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    """One command (a RESP array of bulk strings, or an inline command); None at EOF."""
    line = await reader.readline()
    if not line:
        return None
    if not line.endswith(b"\r\n"):
        raise ProtocolError("unterminated line")
    if line[:1] != b"*":
        return line.split()  # inline command (telnet, redis-cli piping)
    try:
        n = int(line[1:-2])
    except ValueError as exc:
        raise ProtocolError("bad array length") from exc
    if not 0 <= n <= MAX_ARGS:
        raise ProtocolError("array too long")
    args: list[bytes] = []
    for _ in range(n):
        head = await reader.readline()
        if head[:1] != b"$":
            raise ProtocolError("expected a bulk string")
        try:
            size = int(head[1:-2])
        except ValueError as exc:
            raise ProtocolError("bad bulk length") from exc
        if not 0 <= size <= MAX_BULK:
            raise ProtocolError("bulk string too long")
        data = await reader.readexactly(size + 2)
        args.append(data[:-2])
    return args


def _text(b: bytes) -> str:
    return b.decode("latin-1")


class L1Server:
    def __init__(
        self,
        cache: LayeredCache,
        bus: InvalidationBus | None = None,
        *,
        unix_path: str | os.PathLike[str],
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.cache = cache
        self.bus = bus
        self.unix_path = Path(unix_path)
        self.port = port
        self.host = host
        self.commands = 0
        self._servers: list[asyncio.Server] = []
        self._conns: set[asyncio.Task[None]] = set()
        self._handlers: dict[bytes, Callable[[list[bytes]], Awaitable[Any]]] = {
            b"PING": self._ping,
            b"GET": self._get,
            b"SET": self._set,
            b"DEL": self._del,
            b"UNLINK": self._del,
            b"MGET": self._mget,
            b"EXISTS": self._exists,
            b"TTL": self._ttl,
            b"PTTL": self._pttl,
            b"TAGSET": self._tagset,
            b"TAGDEL": self._tagdel,
            b"TAGKEYS": self._tagkeys,
            b"CLIENT": self._ok,
            b"SELECT": self._select,
            b"COMMAND": self._command,
        }

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.unix_path.unlink()
        self.unix_path.parent.mkdir(parents=True, exist_ok=True)
        self._servers.append(await asyncio.start_unix_server(self._serve, str(self.unix_path)))
        os.chmod(self.unix_path, 0o600)
        if self.port is not None:
            server = await asyncio.start_server(self._serve, self.host, self.port)
            self.port = server.sockets[0].getsockname()[1]
            self._servers.append(server)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        with contextlib.suppress(FileNotFoundError):
            self.unix_path.unlink()

    async def __aenter__(self) -> L1Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        resp3 = False
        try:
            while True:
                args = await read_command(reader)
                if args is None:
                    break
                if not args:
                    continue
                name = args[0].upper()
                self.commands += 1
                if name == b"QUIT":
                    writer.write(encode(OK, resp3))
                    break
                if name == b"HELLO":
                    reply, resp3 = self._hello(args, resp3)
                else:
                    handler = self._handlers.get(name)
                    if handler is None:
                        reply = _Error(f"ERR unknown command '{_text(args[0])}'")
                    else:
                        try:
                            reply = await handler(args)
                        except (ValueError, IndexError):
                            reply = _Error("ERR syntax error")
                        except InvalidationError as exc:
                            # Redis is down: a write other L1s cannot hear of is refused, not lost.
                            reply = _Error(f"TRYAGAIN {exc}")
                writer.write(encode(reply, resp3))
                # Drain only when the buffer is big: pipelined commands then share a write.
                if writer.transport.get_write_buffer_size() > 64 * 1024:
                    await writer.drain()
        except (ProtocolError, asyncio.IncompleteReadError, ConnectionError) as exc:
            log.debug("L1 client dropped: %r", exc)
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # -- commands --------------------------------------------------------------------------
    def _hello(self, args: list[bytes], resp3: bool) -> tuple[Any, bool]:
        if len(args) > 1:
            version = args[1]
            if version not in (b"2", b"3"):
                return _Error("NOPROTO unsupported protocol version"), resp3
            resp3 = version == b"3"
        info: dict[str, Any] = {
            "server": "haetae-l1",
            "version": "7.0.0",
            "proto": 3 if resp3 else 2,
            "id": 1,
            "mode": "standalone",
            "role": "master",
            "modules": [],
        }
        return info, resp3

    async def _ok(self, args: list[bytes]) -> Any:
        return OK

    async def _select(self, args: list[bytes]) -> Any:
        return OK if args[1] == b"0" else _Error("ERR DB index is out of range")

    async def _command(self, args: list[bytes]) -> Any:
        return []

    async def _ping(self, args: list[bytes]) -> Any:
        return args[1] if len(args) > 1 else _Status("PONG")

    async def _get(self, args: list[bytes]) -> Any:
        if len(args) != 2:
            return _wrong_args("get")
        value = await self.cache.get(_text(args[1]))
        return NULL if value is None else value

    async def _mget(self, args: list[bytes]) -> Any:
        if len(args) < 2:
            return _wrong_args("mget")
        values = await self.cache.get_many([_text(a) for a in args[1:]])
        return [NULL if v is None else v for v in values]

    async def _exists(self, args: list[bytes]) -> Any:
        if len(args) < 2:
            return _wrong_args("exists")
        values = await self.cache.get_many([_text(a) for a in args[1:]])
        return sum(v is not None for v in values)

    async def _set(self, args: list[bytes]) -> Any:
        if len(args) < 3:
            return _wrong_args("set")
        key, value = _text(args[1]), _text(args[2])
        ttl_s: float | None = None
        nx = False
        i = 3
        while i < len(args):
            opt = args[i].upper()
            if opt == b"NX":
                nx = True
                i += 1
            elif opt in (b"EX", b"PX"):
                amount = int(args[i + 1])
                if amount <= 0:
                    return _Error("ERR invalid expire time in 'set' command")
                ttl_s = amount if opt == b"EX" else amount / 1000
                i += 2
            else:
                return _Error("ERR syntax error")
        if nx and await self.cache.get(key) is not None:
            return NULL
        await self._invalidate_others([key])
        await self.cache.set(key, value, ttl_s=ttl_s)
        return OK

    async def _tagset(self, args: list[bytes]) -> Any:
        if len(args) < 5:
            return _wrong_args("tagset")
        ttl_ms = int(args[3])
        if ttl_ms <= 0:
            return _Error("ERR invalid expire time in 'tagset' command")
        key = _text(args[1])
        await self._invalidate_others([key])
        await self.cache.set(
            key, _text(args[2]), ttl_s=ttl_ms / 1000, tags=[_text(t) for t in args[4:]]
        )
        return OK

    async def _del(self, args: list[bytes]) -> Any:
        if len(args) < 2:
            return _wrong_args("del")
        keys = [_text(a) for a in args[1:]]
        present = sum(k in self.cache.l1 for k in keys)
        await self._invalidate(keys=keys)
        return present

    async def _tagdel(self, args: list[bytes]) -> Any:
        if len(args) < 2:
            return _wrong_args("tagdel")
        tags = [_text(a) for a in args[1:]]
        n = sum(len(self.cache.l1.tag_keys(t)) for t in tags)
        await self._invalidate(tags=tags)
        return n

    async def _tagkeys(self, args: list[bytes]) -> Any:
        if len(args) != 2:
            return _wrong_args("tagkeys")
        return sorted(self.cache.l1.tag_keys(_text(args[1])))

    async def _ttl(self, args: list[bytes]) -> Any:
        return await self._remaining(args, 1)

    async def _pttl(self, args: list[bytes]) -> Any:
        return await self._remaining(args, 1000)

    async def _remaining(self, args: list[bytes], scale: int) -> Any:
        if len(args) != 2:
            return _wrong_args("ttl")
        key = _text(args[1])
        if await self.cache.get(key) is None:
            return -2
        entry = self.cache.l1.peek(key)
        if entry is None:
            return -2
        if entry.fresh_until is None:
            return -1
        # The fresh lifetime the client asked for (the stale-while-revalidate grace is ours).
        return int(max(0.0, entry.fresh_until - self.cache.l1.clock()) * scale)

    # -- invalidation ----------------------------------------------------------------------
    async def _invalidate(self, keys: Sequence[str] = (), tags: Sequence[str] = ()) -> None:
        if self.bus is not None:
            await self.bus.invalidate(keys, tags)
            return
        self.cache.apply_invalidation(keys, tags)
        if self.cache.l2 is not None:
            await self.cache.l2.delete(keys)
            await self.cache.l2.delete_tags(tags)

    async def _invalidate_others(self, keys: list[str]) -> None:
        # An overwrite must reach the other L1s too (they may hold the old value).
        if self.bus is not None:
            await self.bus.invalidate(keys, layers=("l1",))


def _wrong_args(name: str) -> _Error:
    return _Error(f"ERR wrong number of arguments for '{name}' command")
