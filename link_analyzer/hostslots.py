"""Per-host politeness: bounded concurrency and spaced request starts."""

from __future__ import annotations

import asyncio
from collections import OrderedDict


class HostSlots:
    """At most ``per_host`` requests in flight per host, and request starts spaced to at most
    ``rate_per_s`` per host. Slot entries exist only while a host has requests waiting or
    running; the spacing memory is a bounded LRU. Memory follows in-flight work, not the number
    of hosts ever seen."""

    MAX_REMEMBERED_HOSTS = 4096

    def __init__(self, per_host: int, rate_per_s: float | None = None) -> None:
        self.per_host = per_host
        self.interval_s = 1.0 / rate_per_s if rate_per_s else 0.0
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}
        self._next_start: OrderedDict[str, float] = OrderedDict()

    async def acquire(self, host: str) -> None:
        entry = self._slots.get(host)
        if entry is None:
            entry = self._slots[host] = (asyncio.Semaphore(self.per_host), [0])
        entry[1][0] += 1
        try:
            await entry[0].acquire()
        except BaseException:
            self._leave(host, entry)
            raise
        if self.interval_s:
            try:
                await self._space(host)
            except BaseException:
                self.release(host)
                raise

    async def _space(self, host: str) -> None:
        now = asyncio.get_running_loop().time()
        start = max(now, self._next_start.pop(host, now))
        self._next_start[host] = start + self.interval_s
        while len(self._next_start) > self.MAX_REMEMBERED_HOSTS:
            self._next_start.popitem(last=False)
        if start > now:
            await asyncio.sleep(start - now)

    def release(self, host: str) -> None:
        entry = self._slots[host]
        entry[0].release()
        self._leave(host, entry)

    def _leave(self, host: str, entry: tuple[asyncio.Semaphore, list[int]]) -> None:
        entry[1][0] -= 1
        if entry[1][0] == 0:
            del self._slots[host]

    def __len__(self) -> int:
        return len(self._slots)
