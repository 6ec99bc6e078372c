"""The L2: Redis or Redis Cluster through redis-py's asyncio client, with auto-pipelining.

Commands issued in the same event-loop tick are sent as one pipeline (like ioredis'
``enableAutoPipelining``): 100 tasks each awaiting a GET cost one round trip, not 100. Batches
are capped so one slow batch does not hold everything.

On a standalone Redis reached over TCP or a unix socket, the pipelined commands bypass
redis-py and travel on one lean RESP connection (:mod:`haetae.cache.resp`), with the GETs of one
tick merged into an MGET; on a Redis Cluster they travel the same way on one lean connection per
master, routed by slot, following MOVED/ASK (:mod:`haetae.cache.cluster`). An unusual connection
(TLS, credential providers, decoded responses, reads from replicas) goes through redis-py's
pipeline (:class:`AutoPipeline`), where several batches may be in flight at once on separate
pooled connections. This class' other calls
(SMEMBERS, SCAN, EVAL, PING) use the redis-py client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from haetae.cache import cluster, resp
from haetae.cache import keys as ck

CLUSTER_SCHEME = "redis+cluster"

RedisClient = aioredis.Redis | RedisCluster


def client_from_url(url: str, **kwargs: Any) -> RedisClient:
    """``redis+cluster://host:port`` (any one seed node) gives a cluster client, else Redis."""
    parts = urlsplit(url)
    if parts.scheme == CLUSTER_SCHEME:
        return RedisCluster.from_url(urlunsplit(parts._replace(scheme="redis")), **kwargs)
    return aioredis.Redis.from_url(url, **kwargs)


class AutoPipeline(resp.CommandQueue):
    """Queue commands; flush everything queued in this loop iteration as pipelines."""

    def __init__(self, client: RedisClient, *, max_batch: int = 256) -> None:
        self.client = client
        self.max_batch = max_batch
        super().__init__()
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0

    def _flush(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), self.max_batch):
            batch = queue[start : start + self.max_batch]
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        self.batches += 1
        try:
            if len(batch) == 1:
                args, fut = batch[0]
                results: Sequence[Any] = [await self.client.execute_command(*args)]
            else:
                pipe = self.client.pipeline(transaction=False)
                for args, _ in batch:
                    pipe.execute_command(*args)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else ConnectionError())
            if not isinstance(exc, Exception):
                raise
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, Exception):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class RedisL2:
    """Raw-bytes L2 operations on the cache's keyspace (serialisation is the caller's)."""

    def __init__(
        self, client: RedisClient, *, max_batch: int = 256, fast_path: bool | None = None
    ) -> None:
        """``fast_path``: None picks the lean RESP connection whenever the client allows it."""
        self.client = client
        self.is_cluster = isinstance(client, RedisCluster)
        supported = cluster.supports(client) if self.is_cluster else resp.supports(client)
        if fast_path is None:
            fast_path = supported
        elif fast_path and not supported:
            raise ValueError(
                "the RESP fast path needs a plain redis.asyncio Redis or RedisCluster client"
            )
        self.pipeline: AutoPipeline | resp.FastPipeline | cluster.ClusterPipeline
        if not fast_path:
            self.pipeline = AutoPipeline(client, max_batch=max_batch)
        elif isinstance(client, RedisCluster):
            self.pipeline = cluster.ClusterPipeline(client, max_batch=max_batch)
        else:
            self.pipeline = resp.FastPipeline(client, max_batch=max_batch)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisL2:
        return cls(client_from_url(url, **kwargs))

    def get(self, key: str) -> Awaitable[bytes | None]:
        """Await it: a future (no coroutine per call on the hot path)."""
        return self.pipeline.get(ck.value_key(key))

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        futs = [self.pipeline.execute("GET", ck.value_key(k)) for k in keys]
        return list(await asyncio.gather(*futs))

    async def set(
        self, key: str, raw: bytes, *, ttl_ms: int | None, tags: Sequence[str] = ()
    ) -> None:
        vkey = ck.value_key(key)
        args: tuple[Any, ...] = (
            ("SET", vkey, raw) if ttl_ms is None else ("SET", vkey, raw, "PX", ttl_ms)
        )
        futs = [self.pipeline.execute(*args)]
        for tag in tags:
            tkey = ck.tag_key(tag)
            futs.append(self.pipeline.execute("SADD", tkey, key))
            if ttl_ms is not None:
                # The tag index expires with its newest member (members are re-checked on read).
                futs.append(self.pipeline.execute("PEXPIRE", tkey, ttl_ms))
        await asyncio.gather(*futs)

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        futs = [self.pipeline.execute("DEL", ck.value_key(k)) for k in keys]
        return sum(await asyncio.gather(*futs))

    async def delete_tags(self, tags: Sequence[str]) -> list[str]:
        """Delete every value carrying one of ``tags`` (and the tag indexes); the keys hit."""
        doomed: list[str] = []
        for tag in tags:
            members = await self.client.smembers(ck.tag_key(tag))
            doomed.extend(m.decode() if isinstance(m, bytes) else m for m in members)
        await self.delete(doomed)
        if tags:
            await asyncio.gather(*(self.pipeline.execute("DEL", ck.tag_key(t)) for t in tags))
        return doomed

    async def delete_prefix(self, prefix: str, *, batch: int = 500) -> int:
        """SCAN for value keys under ``prefix`` (on every master in a cluster) and delete them."""
        pattern = ck.value_pattern(prefix)
        found: list[str] = []
        async for raw in self.client.scan_iter(match=pattern, count=batch):
            name = raw.decode() if isinstance(raw, bytes) else raw
            found.append(name[ck.VALUE_KEY_PREFIX_LEN :])
        return await self.delete(found)

    async def acquire_lease(self, key: str, token: str, ttl_ms: int) -> bool:
        ok = await self.pipeline.execute("SET", ck.lease_key(key), token, "NX", "PX", ttl_ms)
        return bool(ok)

    async def release_lease(self, key: str, token: str) -> None:
        # Only the holder releases (a lease that expired and was re-taken is someone else's).
        await self.client.eval(_RELEASE_LEASE, 1, ck.lease_key(key), token)

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def aclose(self) -> None:
        await self.pipeline.aclose()
        await self.client.aclose()


_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
