"""Cross-replica wake-ups for the notification pipeline (PostgreSQL LISTEN/NOTIFY).

Every stage of the pipeline claims its work in PostgreSQL, so any control plane can do it; but a
control plane only learns of work another one created when it looks. The transactions that
create work also ``NOTIFY`` the channel :data:`CHANNEL` (delivered at commit, dropped on
rollback, duplicates within a transaction folded into one):

- ``{"k": "group", "at": t}``: a notification group changed or was re-armed; flush it at ``t``.
- ``{"k": "outbox", "d": dest, "at": t}``: a message for ``dest`` was queued, or ``dest`` was
  paused until ``t`` (``at`` left out: sendable now).
- ``{"k": "timer", "at": t}``: an escalation timer (or a delayed page) is due at ``t``.

Each control plane listens on a dedicated connection (:class:`WakeListener`) and wakes the
matching loop at once, or at the due time (:class:`Alarm`). Polling stays as the safety net: a
lost notification (listener connection down, reconnecting with backoff) only costs the poll
interval, and the claims (advisory lock, ``FOR UPDATE SKIP LOCKED``) still decide who does the
work, so a wake-up never makes anything happen twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

CHANNEL = "haetae_alerting"

GROUP = "group"
OUTBOX = "outbox"
TIMER = "timer"

Connect = Callable[[], Awaitable[asyncpg.Connection]]
# A listener connection up this long resets the reconnect backoff.
_STABLE_S = 30.0


async def notify(
    conn: asyncpg.Connection,
    kind: str,
    *,
    at: float | None = None,
    destination: str | None = None,
) -> None:
    """Tell every control plane (at commit of ``conn``'s transaction) that work of ``kind`` is
    due at ``at`` (epoch seconds; None: now)."""
    payload: dict[str, Any] = {"k": kind}
    if destination is not None:
        payload["d"] = destination
    if at is not None:
        # Milliseconds: identical wake-ups in one transaction fold into one notification.
        payload["at"] = round(at, 3)
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, orjson.dumps(payload).decode())


class Wakeup:
    __slots__ = ("at", "destination", "kind")

    def __init__(self, kind: str, at: float | None, destination: str | None) -> None:
        self.kind = kind
        self.at = at
        self.destination = destination

    @classmethod
    def parse(cls, payload: str) -> Wakeup | None:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("k"), str):
            return None
        at = data.get("at")
        dest = data.get("d")
        return cls(
            data["k"],
            float(at) if isinstance(at, (int, float)) else None,
            dest if isinstance(dest, str) else None,
        )


class WakeupMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.connected = Gauge(
            "haetae_notify_listener_connected",
            "1 while the notification pipeline's LISTEN connection is up (else polling only).",
            registry=r,
        )
        self.reconnects = Counter(
            "haetae_notify_listener_reconnects_total",
            "Times the notification pipeline's LISTEN connection was lost or could not connect.",
            registry=r,
        )
        self.wakeups = Counter(
            "haetae_notify_wakeups_total",
            "Cross-replica wake-ups received (LISTEN/NOTIFY), by kind.",
            ["kind"],
            registry=r,
        )
        for kind in (GROUP, OUTBOX, TIMER):
            self.wakeups.labels(kind)


class Alarm:
    """Calls ``fire`` at each of the times asked for (the earliest first), on the event loop's
    clock; times within ``slack_s`` of each other share one call. At most ``limit`` times are
    kept (beyond, the poll picks the work up)."""

    def __init__(
        self, fire: Callable[[], None], *, slack_s: float = 0.005, limit: int = 4096
    ) -> None:
        self._fire = fire
        self._slack = slack_s
        self._limit = limit
        self._due: list[float] = []
        self._handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._due)

    def after(self, delay_s: float) -> None:
        if delay_s <= 0:
            self._fire()
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay_s + self._slack  # never before the time in the database
        if self._handle is not None and abs(self._handle.when() - when) <= self._slack:
            return
        if len(self._due) >= self._limit:
            return
        heapq.heappush(self._due, when)
        self._arm(loop)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._due.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._due:
            return
        first = self._due[0]
        if self._handle is not None:
            if self._handle.when() <= first:
                return
            self._handle.cancel()
        self._handle = loop.call_at(first, self._ring)

    def _ring(self) -> None:
        loop = asyncio.get_running_loop()
        self._handle = None
        now = loop.time()
        while self._due and self._due[0] <= now + self._slack:
            heapq.heappop(self._due)
        self._fire()
        self._arm(loop)


class WakeListener:
    """LISTEN on a dedicated connection; ``on_wakeup`` gets each notification. A lost connection
    is logged, counted and re-opened with backoff (``on_resync`` is called once it is back:
    notifications sent meanwhile are lost, the caller looks for work instead)."""

    def __init__(
        self,
        connect: Connect,
        on_wakeup: Callable[[Wakeup], None],
        *,
        on_resync: Callable[[], None] = lambda: None,
        metrics: WakeupMetrics | None = None,
        log: logging.Logger | None = None,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 5.0,
        check_s: float = 10.0,
    ) -> None:
        self._connect = connect
        self._on_wakeup = on_wakeup
        self._on_resync = on_resync
        self.metrics = metrics or WakeupMetrics()
        self._log = log or logging.getLogger("control_plane.alerting")
        self._base = backoff_base_s
        self._max = backoff_max_s
        self._check = check_s
        # Set each time the listener is (re)subscribed (tests wait on it).
        self.subscribed = asyncio.Event()
        self.connection: asyncpg.Connection | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0  # in a row: a connection lost soon after it was made still counts
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            up_since: float | None = None
            try:
                conn = await self._connect()
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(CHANNEL, self._notified)
                self.connection = conn
                up_since = loop.time()
                self.metrics.connected.set(1)
                if failures:
                    self._log.info("notification listener reconnected")
                self.subscribed.set()
                # Work created while not listening was never announced to us: look for it.
                self._on_resync()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._check)
                    if not lost.is_set():
                        # A half-open TCP connection says nothing: ask.
                        await conn.fetchval("SELECT 1", timeout=self._check)
                raise ConnectionError("connection closed")
            except asyncio.CancelledError:
                self.metrics.connected.set(0)
                if conn is not None:
                    conn.terminate()
                raise
            except Exception as exc:  # any failure: back off, reconnect
                if up_since is not None and loop.time() - up_since >= _STABLE_S:
                    failures = 0
                failures += 1
                self.subscribed.clear()
                self.connection = None
                self.metrics.connected.set(0)
                self.metrics.reconnects.inc()
                if conn is not None:
                    conn.terminate()
                delay = min(self._max, self._base * 2 ** (failures - 1))
                self._log.warning(
                    "notification listener lost (%s); polling meanwhile, reconnect in %.1fs",
                    str(exc) or type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        wakeup = Wakeup.parse(payload)
        if wakeup is None:
            self._log.warning("ignored malformed wake-up %r", payload[:200])
            return
        self.metrics.wakeups.labels(wakeup.kind).inc()
        self._on_wakeup(wakeup)
