"""Back-fill of the in-memory windows from PostgreSQL when the control plane starts.

The windows start empty; without their history ``rate()`` / ``increase()`` / ``*_over_time``
rules over long ranges (the default "hit ratio vs the previous hour" rule) would see a few
minutes of data after a restart and resolve, or fire, falsely. So at start-up the samples of the
span the rules need (the longest range + offset of any loaded rule, capped by the window length)
are read back, series by series in pages keyed on ``series_id`` (``WHERE series_id > $last``),
each page's samples streamed with one binary ``COPY ... TO STDOUT`` and parsed in chunks, so
neither side ever holds one giant result.

It runs in the background while ingest already serves: a series' stored points are merged into
whatever ingest has added meanwhile (:meth:`SeriesWindows.merge`; the event loop runs one merge
at a time, between two awaits), so nothing is lost or doubled. The rule engine waits for it
before its first pass (:meth:`WindowBackfill.wait`, with a time-out after which it evaluates
anyway and says so in the log).

Measured (benchmarks/window_backfill.py, embedded PostgreSQL on a shared 2-core machine):
1,000 series x 1 h at 1 s (3.6 M samples) load in 5.2-5.9 s (0.6-0.7 M samples/s); the
event loop is never held for more than one COPY chunk or one series' merge at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from prometheus_client import CollectorRegistry, Gauge

from control_plane.ingest.windows import SeriesRef, SeriesWindows

# Series whose last_seen_at is older than this before the span cannot have samples in it
# (ingest refreshes last_seen_at at least every SERIES_TOUCH_MAX_S; see ingest/series.py),
# with an hour of slack for clock skew.
_LAST_SEEN_SLACK_S = 2 * 3600.0

_SERIES_PAGE = """
SELECT series_id, agent_id, name, labels FROM series
WHERE series_id > $1 AND last_seen_at > to_timestamp($2)
ORDER BY series_id
LIMIT $3
"""
# COPY takes no parameters; the ids and the time are numbers formatted here (no quoting needed).
_SAMPLES = """
SELECT series_id, ts, value FROM samples
WHERE series_id = ANY('{{{ids}}}'::int8[]) AND ts > to_timestamp({since:.6f})
ORDER BY series_id, ts
"""

# Binary COPY: a 19-byte header (+ extension), then per row: int16 field count, and per field an
# int32 length and the value; our three columns are all 8 bytes and NOT NULL, so every row is
# exactly 38 bytes. timestamptz is microseconds since 2000-01-01 UTC. The trailer is int16 -1.
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_ROW = struct.Struct(">hiqiqid")
_PG_EPOCH_US = 946_684_800_000_000


@dataclass
class BackfillResult:
    span_s: float
    series: int = 0
    samples: int = 0
    duration_s: float = 0.0
    complete: bool = False


class BackfillMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.duration = Gauge(
            "haetae_window_backfill_duration_seconds",
            "How long the start-up back-fill of the rule windows from PostgreSQL took.",
            registry=r,
        )
        self.samples = Gauge(
            "haetae_window_backfill_samples",
            "Samples the start-up back-fill put into the rule windows.",
            registry=r,
        )
        self.series = Gauge(
            "haetae_window_backfill_series",
            "Series the start-up back-fill put into the rule windows.",
            registry=r,
        )
        self.complete = Gauge(
            "haetae_window_backfill_complete",
            "1 once the start-up back-fill has finished (rules wait for it, or its time-out).",
            registry=r,
        )


class _CopySink:
    """Parses a binary COPY stream of (series_id, ts, value) ordered by series and ts, and merges
    each series into the windows as soon as its last row has arrived."""

    def __init__(self, fill: Callable[[int, array[float], array[float]], None]) -> None:
        self._fill = fill
        self._buf = b""
        self._header = False
        self._sid = -1
        self._times = array("d")
        self._values = array("d")
        self.rows = 0

    async def __call__(self, chunk: bytes) -> None:
        buf = self._buf + chunk if self._buf else bytes(chunk)
        start = 0
        if not self._header:
            if len(buf) < 19:
                self._buf = buf
                return
            if buf[:11] != _SIGNATURE:
                raise ValueError("not a binary COPY stream")
            start = 19 + int.from_bytes(buf[15:19], "big")
            if len(buf) < start:
                self._buf = buf
                return
            self._header = True
        usable = (len(buf) - start) // _ROW.size * _ROW.size
        end = start + usable
        sid = self._sid
        times, values = self._times, self._values
        add_t, add_v = times.append, values.append
        rows = 0
        for _, _, series_id, _, us, _, value in _ROW.iter_unpack(memoryview(buf)[start:end]):
            if series_id != sid:
                if sid >= 0:
                    self._fill(sid, times, values)
                sid = series_id
                times, values = array("d"), array("d")
                add_t, add_v = times.append, values.append
            add_t((us + _PG_EPOCH_US) / 1e6)  # exact µs, then one rounding: as ingest has it
            add_v(value)
            rows += 1
        self.rows += rows
        self._sid, self._times, self._values = sid, times, values
        self._buf = buf[end:]

    def finish(self) -> None:
        if self._buf not in (b"", b"\xff\xff"):
            raise ValueError(f"binary COPY stream ended with {len(self._buf)} stray bytes")
        if self._sid >= 0:
            self._fill(self._sid, self._times, self._values)
        self._sid = -1


class WindowBackfill:
    """Loads the windows' history once; :meth:`wait` is the rule engine's gate."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        windows: SeriesWindows,
        *,
        clock: Callable[[], float] = time.time,
        metrics: BackfillMetrics | None = None,
        series_page: int = 200,
        retry_s: float = 2.0,
        log: logging.Logger | None = None,
    ) -> None:
        self._pool = pool
        self._windows = windows
        self._clock = clock
        self._metrics = metrics or BackfillMetrics()
        self._page = series_page
        self._retry_s = retry_s
        self._log = log or logging.getLogger("control_plane.ingest.backfill")
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.result: BackfillResult | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def start(self, span_s: float) -> None:
        """Start loading ``span_s`` seconds of history in the background."""
        if span_s <= 0:
            self.result = BackfillResult(0.0, complete=True)
            self._finish()
            return
        self._task = asyncio.create_task(self._run_until_done(span_s), name="window-backfill")

    def skip(self) -> None:
        """Nothing to load (alerting off, back-fill disabled): open the gate at once."""
        self._finish()

    async def wait(self, timeout_s: float) -> bool:
        """Until the back-fill is done or ``timeout_s`` passed; False (and a warning) then."""
        try:
            await asyncio.wait_for(self._done.wait(), timeout_s)
        except TimeoutError:
            self._log.warning(
                "window back-fill not finished after %.0f s; evaluating rules over partly "
                "loaded windows (it goes on in the background)",
                timeout_s,
            )
            return False
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._done.set()  # nobody waits any more; "complete" stays as it was

    async def run(self, span_s: float) -> BackfillResult:
        """One complete load of the last ``span_s`` seconds into the windows."""
        started = time.perf_counter()
        now = self._clock()
        since = now - span_s
        windows = self._windows
        result = BackfillResult(span_s)
        refs: dict[int, SeriesRef] = {}

        def fill(series_id: int, times: array[float], values: array[float]) -> None:
            result.samples += windows.merge(refs[series_id], times, values, now)
            result.series += 1

        last = 0
        async with self._pool.acquire() as conn:
            while True:
                page = await conn.fetch(_SERIES_PAGE, last, since - _LAST_SEEN_SLACK_S, self._page)
                if not page:
                    break
                last = page[-1]["series_id"]
                refs = {
                    r["series_id"]: SeriesRef(r["series_id"], r["agent_id"], r["name"], r["labels"])
                    for r in page
                }
                sink = _CopySink(fill)
                query = _SAMPLES.format(ids=",".join(map(str, refs)), since=since)
                await conn.copy_from_query(query, output=sink, format="binary")
                sink.finish()
                if len(page) < self._page:
                    break
        result.duration_s = time.perf_counter() - started
        result.complete = True
        return result

    async def _run_until_done(self, span_s: float) -> None:
        while True:
            try:
                result = await self.run(span_s)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                # What was merged stays (merging again is harmless): retry the whole load.
                self._log.warning("window back-fill failed; retrying: %s", exc)
                await asyncio.sleep(self._retry_s)
                continue
            except Exception:  # pragma: no cover - a bug: evaluate without history
                self._log.exception("window back-fill failed")
                break
            self.result = result
            m = self._metrics
            m.duration.set(result.duration_s)
            m.samples.set(result.samples)
            m.series.set(result.series)
            self._log.info(
                "window back-fill: %d samples of %d series (last %.0f s) in %.2f s",
                result.samples,
                result.series,
                span_s,
                result.duration_s,
            )
            break
        self._finish()

    def _finish(self) -> None:
        self._metrics.complete.set(1)
        self._done.set()
