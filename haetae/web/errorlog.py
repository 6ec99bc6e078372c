"""Logging what went wrong while answering a request, bounded so that hostile input or an outage
cannot flood the logs: one unexpected error is one line with the innermost frames (a RecursionError
once made a 136 KB line), and a fault repeated by every request (the database is down) is logged
once per interval per kind, with the count of those left out."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable

from aiohttp import web

from haetae.web.faults import Fault

log = logging.getLogger("haetae.web")

# ``instance`` and logged paths name the request path; an 8 KB path is not repeated whole.
MAX_INSTANCE = 256
MAX_LOGGED_FRAMES = 12
MAX_LOGGED_CHARS = 8 * 1024
MAX_MESSAGE = 512
FAULT_LOG_INTERVAL_S = 10.0


def bounded_instance(path: str) -> str:
    return path if len(path) <= MAX_INSTANCE else path[: MAX_INSTANCE - 3] + "..."


def log_unhandled(exc: BaseException, request: web.BaseRequest | None = None) -> None:
    """Log an unexpected exception as one bounded line: the innermost frames, a cut message."""
    log.error(
        "unhandled error: %s: %s",
        type_name(exc),
        bounded(_message(exc), MAX_MESSAGE),
        extra={
            "url.path": bounded_instance(request.path) if request is not None else None,
            "error.type": type_name(exc),
            "error.stack_trace": bounded_traceback(exc),
        },
    )


def bounded_traceback(exc: BaseException) -> str:
    # A negative limit keeps the innermost frames: where the error was raised, not the framework.
    summary = traceback.TracebackException.from_exception(exc, limit=-MAX_LOGGED_FRAMES)
    return bounded("".join(summary.format()), MAX_LOGGED_CHARS)


class FaultLogThrottle:
    """At most one line per kind of fault per interval; the next line says how many were left
    out. The clock is injectable for tests."""

    def __init__(
        self, interval_s: float = FAULT_LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def admit(self, kind: str) -> int | None:
        """None to stay quiet; else the number of lines of this kind left out since the last."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval_s:
                self._skipped[kind] = self._skipped.get(kind, 0) + 1
                return None
            self._last[kind] = now
            return self._skipped.pop(kind, 0)


_throttle = FaultLogThrottle()


def log_fault(
    fault: Fault,
    exc: BaseException,
    request: web.BaseRequest,
    throttle: FaultLogThrottle | None = None,
) -> None:
    kind = type_name(exc)
    skipped = (throttle or _throttle).admit(f"{fault.type_}:{kind}")
    if skipped is None:
        return
    also = f" ({skipped} more since the last line)" if skipped else ""
    extra = {"url.path": bounded_instance(request.path), "error.type": kind}
    message = bounded(_message(exc), MAX_MESSAGE)
    if fault.seam_missed:
        log.warning(
            "the validation seam let through input that %s refused (%s: %s); answered 400, "
            "the route's model should refuse it%s",
            type(exc).__module__.split(".", 1)[0],
            kind,
            message,
            also,
            extra=extra,
        )
    else:
        log.warning("answered %d: %s: %s%s", fault.status, kind, message, also, extra=extra)


def type_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the log line
        return "<unprintable>"
