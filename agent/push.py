"""Samples the app pushes to its agent (``POST /v1/push``), shipped at once in an urgent report.

The scheduled collection pulls every ``interval_s``, so a change the app makes waits up to one
interval before the agent sees it. An app that knows it just changed something an alert may
depend on (a state flag, a queue that filled, a circuit that opened) can push the new values:
the agent answers ``202`` as soon as they are buffered, and within milliseconds sends them to the
control plane in a report of their own, marked ``urgent`` (the control plane then commits it
without waiting to batch it with other reports). Urgent reports go through the spool like any
other, so they are as durable and ordered; they are spaced at least ``push.min_interval_s``
apart, and samples pushed meanwhile wait for the next one (or for the next scheduled report,
whichever comes first): each pushed sample is reported exactly once. The scheduled collection
keeps running as before; pushing complements the scrape, it does not replace it.

Bodies: the Prometheus text exposition format (any ``Content-Type`` but JSON's, so that
``curl --data-binary`` works; what ``prometheus_client.generate_latest`` writes), or JSON
``{"samples": [{"name": ..., "labels": {...}, "value": ..., "ts": ...}]}`` (``Content-Type:
application/json``; ``labels`` and ``ts`` optional). Samples without a timestamp are stamped
with the time the agent received them. Bad input is a ``400 application/problem+json`` naming
the field at fault; nothing of such a body is kept. "Bad" is what the control plane would refuse
(agent/wire.py: NUL, lengths, the label set's size), so a push can never block the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter

from agent.collectors.base import Sample
from agent.collectors.exposition import MAX_FUTURE_S, ExpositionParser
from agent.http.server import Answer, Request
from agent.runner import CollectorRun, Cycle
from agent.wire import series_problem

PATH = "/v1/push"
PROBLEM = "application/problem+json"
_SPECIAL = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}

Submit = Callable[[Cycle], Awaitable[object]]


class PushRefused(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.headers = headers or {}

    def answer(self) -> Answer:
        doc: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field:
            doc["field"] = self.field
        return self.status, PROBLEM, orjson.dumps(doc), self.headers


def _invalid(field: str, detail: str) -> PushRefused:
    return PushRefused(400, "Bad Request", detail, field=field)


def parse_push(body: bytes, content_type: str, now: float) -> list[Sample]:
    """The samples of a push body (every one with a timestamp: ``now`` when it had none);
    raises :class:`PushRefused` for anything the control plane would not accept."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        samples = _parse_json(body, now)
    elif media == "application/vnd.google.protobuf":
        raise PushRefused(
            415,
            "Unsupported Media Type",
            "send the Prometheus text format or application/json",
            field="header.Content-Type",
        )
    else:  # text/plain, or whatever `curl --data-binary` says: the text format
        samples = _parse_text(body, now)
    if not samples:
        raise _invalid("body", "no samples")
    return samples


def _parse_text(body: bytes, now: float) -> list[Sample]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid("body", "not UTF-8") from exc
    parser = ExpositionParser()
    try:
        samples = parser.parse(text, now=now)
    except ValueError as exc:
        raise _invalid("body", f"not the Prometheus text format: {exc}") from exc
    if parser.refused:
        raise _invalid(
            "body",
            f"{parser.refused} samples the control plane would refuse (name or label limits,"
            " or a timestamp too far ahead)",
        )
    return [Sample(s.name, s.labels, s.value, now if s.ts is None else s.ts) for s in samples]


def _parse_json(body: bytes, now: float) -> list[Sample]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _invalid("body", f"not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("samples"), list):
        raise _invalid("samples", 'expected {"samples": [...]}')
    out: list[Sample] = []
    for i, raw in enumerate(doc["samples"]):
        where = f"samples[{i}]"
        if not isinstance(raw, dict):
            raise _invalid(where, "expected an object")
        name = raw.get("name")
        labels = raw.get("labels", {})
        if not isinstance(name, str):
            raise _invalid(f"{where}.name", "expected a string")
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise _invalid(f"{where}.labels", "expected an object of strings")
        problem = series_problem(name, labels)
        if problem is not None:  # it would get the urgent report refused (and dead-lettered)
            raise _invalid(f"{where}.{problem[0]}", problem[1])
        value = raw.get("value")
        if isinstance(value, str) and value in _SPECIAL:
            value = _SPECIAL[value]
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(f"{where}.value", 'expected a number (or "NaN", "+Inf", "-Inf")')
        ts = raw.get("ts")
        if ts is None:
            ts = now
        elif isinstance(ts, bool) or not isinstance(ts, int | float) or ts <= 0:
            raise _invalid(f"{where}.ts", "expected positive unix seconds")
        elif ts > now + MAX_FUTURE_S:
            raise _invalid(f"{where}.ts", "too far in the future")
        out.append(Sample(name, dict(labels), float(value), float(ts)))
    return out


class Push:
    """The push endpoint's state: the buffer of pushed samples not reported yet, and the urgent
    report sender. ``take`` hands what is left to the scheduled cycle."""

    def __init__(
        self,
        submit: Submit,
        registry: CollectorRegistry,
        *,
        token: str | None = None,
        min_interval_s: float = 0.1,
        max_samples: int = 10_000,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self._submit = submit
        self._token = token or None
        self._min_interval = min_interval_s
        self._max_samples = max_samples
        self._clock = clock
        self._log = logger or logging.getLogger("haetae.agent.push")
        self._pending: list[Sample] = []
        self._last_urgent = -math.inf  # monotonic
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._requests = Counter(
            "haetae_agent_push_requests",
            "Push requests, by outcome (accepted, refused).",
            ["outcome"],
            registry=registry,
        )
        self._samples = Counter(
            "haetae_agent_push_samples", "Samples accepted on /v1/push.", registry=registry
        )
        self._urgent = Counter(
            "haetae_agent_urgent_reports",
            "Reports sent at once for pushed samples.",
            registry=registry,
        )
        for outcome in ("accepted", "refused"):
            self._requests.labels(outcome)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def handle(self, request: Request) -> Answer:
        """``POST /v1/push``: 202 once the samples are buffered (the urgent report is on its
        way), else a problem."""
        try:
            self._authorize(request.headers.get("authorization", ""))
            if self._closed:
                raise PushRefused(
                    503,
                    "Service Unavailable",
                    "the agent is stopping",
                    headers={"Retry-After": "1"},
                )
            encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise PushRefused(
                    415,
                    "Unsupported Media Type",
                    "compressed bodies are not accepted",
                    field="header.Content-Encoding",
                )
            ctype = request.headers.get("content-type", "")
            samples = parse_push(request.body, ctype, self._clock())
            if len(self._pending) + len(samples) > self._max_samples:
                raise PushRefused(
                    429,
                    "Too Many Requests",
                    "too many pushed samples are waiting to be reported; retry shortly",
                    headers={"Retry-After": "1"},
                )
        except PushRefused as exc:
            self._requests.labels("refused").inc()
            return exc.answer()
        self._pending.extend(samples)
        self._requests.labels("accepted").inc()
        self._samples.inc(len(samples))
        self._schedule()
        return 202, "application/json", orjson.dumps({"accepted": len(samples)}), {}

    def take(self) -> list[Sample]:
        """The pushed samples not reported yet (the caller reports them)."""
        taken, self._pending = self._pending, []
        return taken

    async def close(self) -> None:
        """Stop the urgent sender and spool what is still buffered (the reporter's final flush
        then sends it, or the next start does); later pushes are answered 503."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pending:
            await self._report(self.take())

    def _authorize(self, header: str) -> None:
        if self._token is None:
            return
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token.encode()
        ):
            raise PushRefused(
                401,
                "Unauthorized",
                "a push needs Authorization: Bearer <push.token>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def _schedule(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._send_urgent(), name="haetae-agent-push")

    async def _send_urgent(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            wait = self._last_urgent + self._min_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            samples = self.take()
            if not samples:
                return  # the scheduled cycle took them meanwhile
            self._last_urgent = loop.time()
            if not await self._report(samples):
                return

    async def _report(self, samples: list[Sample]) -> bool:
        run = CollectorRun("push", True, 0.0, len(samples))
        try:
            await self._submit(Cycle(self._clock(), samples, [run], urgent=True))
        except Exception:  # a bug here must cost these samples, not the endpoint
            self._log.exception("urgent report of pushed samples failed")
            return False
        self._urgent.inc()
        return True
