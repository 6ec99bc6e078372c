"""The outbox -> channels (PostgreSQL + HTTP): one message at a time per destination.

A sender claims a destination whose next send is due (``FOR UPDATE SKIP LOCKED`` on its row)
and sends its oldest pending message while holding the claim, then records the outcome in the
same transaction: with several control planes each message is sent by one of them, in order.
The destination row carries every delay: the channel's rate limit after a success, the
``Retry-After`` of a 429, the jittered backoff after a 5xx (so later messages never overtake an
earlier one). A message that keeps failing (``fallback_after_attempts``) or is refused (4xx other
than 429) is handed to the receiver's next channel; without one, a refused message is marked
failed and any other keeps being retried: nothing is dropped silently.
If the process dies mid-send the transaction rolls back and the message is sent again: receivers
get an ``Idempotency-Key`` to recognise it.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Mapping
from enum import StrEnum

import asyncpg

from control_plane.alerting import wakeups
from control_plane.alerting.channels.base import (
    Channel,
    PermanentSendError,
    RateLimited,
    RetryableSendError,
    SendError,
)
from control_plane.alerting.outbox import enqueue
from control_plane.alerting.retry import backoff_s

_CLAIM = """
SELECT d.destination FROM notify_destinations d
WHERE d.next_send_at <= $1 AND d.destination = ANY($2::text[])
  AND EXISTS (SELECT 1 FROM notify_outbox o
              WHERE o.destination = d.destination AND o.status = 'pending')
ORDER BY d.next_send_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
_OLDEST = """
SELECT outbox_id, group_key, payload, idempotency_key, attempts FROM notify_outbox
WHERE destination = $1 AND status = 'pending'
ORDER BY outbox_id LIMIT 1
"""

_PREVIOUS = """
SELECT receipt FROM notify_outbox
WHERE destination = $1 AND group_key = $2 AND status = 'sent' AND receipt IS NOT NULL
ORDER BY outbox_id DESC LIMIT 1
"""


class Outcome(StrEnum):
    SENT = "sent"
    RATE_LIMITED = "rate_limited"
    RETRY = "retry"
    FELL_BACK = "fell_back"
    FAILED = "failed"


class OutboxSender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        channels: Mapping[str, Channel],
        *,
        retry_base_s: float,
        retry_max_s: float,
        fallbacks: Mapping[str, str] | None = None,
        fallback_after_attempts: int = 5,
        rng: random.Random | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self._pool = pool
        self._channels = channels
        self._names = sorted(channels)
        # destination -> the receiver's next destination, for messages it keeps failing
        self._fallbacks = dict(fallbacks or {})
        self._fallback_after = fallback_after_attempts
        self._base = retry_base_s
        self._max = retry_max_s
        self._rng = rng or random.Random()
        self._log = log or logging.getLogger("control_plane.alerting")

    async def send_one(self, now: float) -> Outcome | None:
        """Send the next due message of one destination; None when nothing is due."""
        if not self._names:
            return None
        when = dt.datetime.fromtimestamp(now, dt.UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            dest = await conn.fetchval(_CLAIM, when, self._names)
            if dest is None:
                return None
            row = await conn.fetchrow(_OLDEST, dest)
            if row is None:
                # Another sender sent it between our claim's snapshot and our lock.
                return None
            channel = self._channels[dest]
            previous = await conn.fetchval(_PREVIOUS, dest, row["group_key"])
            attempt = row["attempts"] + 1
            try:
                delivery = await channel.send(
                    row["payload"], idempotency_key=row["idempotency_key"], previous=previous
                )
            except RateLimited as exc:
                await self._later(conn, row, dest, exc, now + exc.retry_after_s)
                return Outcome.RATE_LIMITED
            except RetryableSendError as exc:
                delay = backoff_s(attempt, base_s=self._base, max_s=self._max, rng=self._rng)
                if attempt >= self._fallback_after and await self._fall_back(
                    conn, row, dest, attempt, exc, now
                ):
                    await self._pause(conn, dest, now + delay)
                    return Outcome.FELL_BACK
                await self._later(conn, row, dest, exc, now + delay)
                self._log.warning(
                    "notification to %s failed (%s); retry in %.1fs", dest, exc, delay
                )
                return Outcome.RETRY
            except PermanentSendError as exc:
                if await self._fall_back(conn, row, dest, attempt, exc, now):
                    return Outcome.FELL_BACK
                await conn.execute(
                    """UPDATE notify_outbox SET status = 'failed', attempts = $2,
                           last_error = $3, response_status = $4 WHERE outbox_id = $1""",
                    row["outbox_id"],
                    attempt,
                    exc.reason[:500],
                    exc.status,
                )
                self._log.error("notification to %s refused: %s", dest, exc)
                return Outcome.FAILED
            await conn.execute(
                """UPDATE notify_outbox SET status = 'sent', attempts = $2, sent_at = $3,
                       response_status = $4, receipt = $5, last_error = NULL
                   WHERE outbox_id = $1""",
                row["outbox_id"],
                attempt,
                when,
                delivery.status,
                dict(delivery.receipt),
            )
            await self._pause(conn, dest, now + channel.min_interval_s)
            return Outcome.SENT

    async def _fall_back(
        self,
        conn: asyncpg.Connection,
        row: asyncpg.Record,
        dest: str,
        attempt: int,
        exc: SendError,
        now: float,
    ) -> bool:
        """Hand the message to the receiver's next channel (this copy is marked failed);
        False when there is none (it stays here and keeps being retried)."""
        target = self._fallbacks.get(dest)
        if target is None:
            return False
        await enqueue(
            conn,
            target,
            row["group_key"],
            row["payload"],
            f"{row['idempotency_key']}/fallback",
            now,
        )
        await conn.execute(
            """UPDATE notify_outbox SET status = 'failed', attempts = $2, last_error = $3,
                   response_status = $4 WHERE outbox_id = $1""",
            row["outbox_id"],
            attempt,
            f"{exc.reason[:400]}; handed to {target}",
            exc.status,
        )
        self._log.warning("notification to %s handed to %s after: %s", dest, target, exc)
        return True

    async def _later(
        self,
        conn: asyncpg.Connection,
        row: asyncpg.Record,
        dest: str,
        exc: RetryableSendError,
        at: float,
    ) -> None:
        when = dt.datetime.fromtimestamp(at, dt.UTC)
        await conn.execute(
            """UPDATE notify_outbox SET attempts = attempts + 1, last_error = $2,
                   response_status = $3, next_attempt_at = $4 WHERE outbox_id = $1""",
            row["outbox_id"],
            exc.reason[:500],
            exc.status,
            when,
        )
        await self._pause(conn, dest, at)

    async def _pause(self, conn: asyncpg.Connection, dest: str, until: float) -> None:
        await conn.execute(
            "UPDATE notify_destinations SET next_send_at = $2 WHERE destination = $1",
            dest,
            dt.datetime.fromtimestamp(until, dt.UTC),
        )
        # Whoever sends next (any control plane) wakes when the pause ends, if there is more.
        if await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM notify_outbox WHERE destination = $1"
            " AND status = 'pending')",
            dest,
        ):
            await wakeups.notify(conn, wakeups.OUTBOX, destination=dest, at=until)
