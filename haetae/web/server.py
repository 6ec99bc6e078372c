"""The HTTP protocol level of every aiohttp server Haetae runs: errors and a header-read deadline.

aiohttp answers what it cannot parse (a request line or header past 8,190 bytes, a bad
Content-Length, an invalid method) in ``RequestHandler.handle_error`` with text/plain that echoes
the input, and it waits for a request head as long as its keep-alive timeout (an hour by default):
50 half-sent requests hold 50 descriptors. :class:`HardenedRequestHandler` answers those errors as
problem+json that names no input, and closes a connection whose request head is not complete
within ``header_timeout_s`` (408 when part of a head came, silently when nothing came). A
connection idle *between* requests keeps aiohttp's ``keepalive_timeout``.

Wire it with :class:`HardenedAppRunner` in place of ``web.AppRunner``, or :func:`run_app` in place
of ``web.run_app``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import http_exceptions, web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from haetae.web.errorlog import log_unhandled
from haetae.web.problem import PROBLEM_CONTENT_TYPE, ProblemError, problem_response

log = logging.getLogger("haetae.web")

DEFAULT_HEADER_TIMEOUT_S = 10.0
# aiohttp's run_app default; RequestHandler's own (3,630 s) outlives any proxy but also any attack.
DEFAULT_KEEPALIVE_TIMEOUT_S = 75.0


class HardenedRequestHandler(RequestHandler):
    """aiohttp's protocol with problem+json protocol errors and a request-head deadline."""

    def __init__(self, manager: web.Server, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = False  # part of a head has arrived (a 408 is then owed)
        self._last_payload: StreamReader | None = None

    # --- the request-head deadline -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # The first head is due from the moment the connection opens, as in nginx.
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        heads_before = self._request_count
        super().data_received(data)
        if self._request_count != heads_before:
            self._disarm_head_deadline()
            self._last_payload = self._messages[-1][1] if self._messages else None
        elif data and self._reading_head():
            self._head_bytes = True
            if self._head_deadline is None:
                self._arm_head_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_head_deadline()
        self._last_payload = None
        super().connection_lost(exc)

    def _reading_head(self) -> bool:
        """Whether bytes now arriving belong to a request head, not to a body or an upgrade."""
        if self._upgraded or self._payload_parser is not None:
            return False
        return self._last_payload is None or self._last_payload.is_eof()

    def _arm_head_deadline(self) -> None:
        if self._header_timeout_s > 0:
            self._head_deadline = self._loop.call_later(
                self._header_timeout_s, self._head_deadline_passed
            )

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        self._head_bytes = False

    def _head_deadline_passed(self) -> None:
        self._head_deadline = None
        if self.transport is None or self._force_close:
            return
        if self._request_in_progress or self._messages:
            # A pipelined head behind a request still being answered: judge it after that.
            self._arm_head_deadline()
            return
        if self._head_bytes:
            self.transport.write(_REQUEST_TIMEOUT)
        log.debug("closed a connection whose request head did not arrive in time")
        self.force_close()

    # --- protocol errors -----------------------------------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's error answer as problem+json that never echoes the input."""
        problem = protocol_problem(status, exc)
        if status >= 500:
            if exc is not None:
                log_unhandled(exc)
            else:
                log.error("answered %d at the protocol level", status)
        else:
            # A client's malformed request: the server is fine, so no traceback.
            log.debug("protocol error %d (%s)", status, type(exc).__name__ if exc else "-")
        if request.writer.output_size > 0:
            raise ConnectionError("a response is already under way; cannot send the error")
        response = problem_response(problem)
        response.force_close()
        return response


def protocol_problem(status: int, exc: BaseException | None) -> ProblemError:
    """What to answer for a request aiohttp could not parse or handle, from the error's class
    only: its message quotes the offending line, which may be kilobytes of hostile input."""
    if isinstance(exc, http_exceptions.LineTooLong):
        line = exc.args[0] if exc.args else b""
        if isinstance(line, bytes | bytearray | str) and line[:1] in (b"/", "/"):
            return ProblemError(
                414, "URI Too Long", detail=_LINE_DETAIL, type_="request-line-too-long"
            )
        return ProblemError(
            431, "Request Header Fields Too Large", detail=_LINE_DETAIL, type_="header-too-long"
        )
    if isinstance(exc, http_exceptions.BadHttpMethod):
        return ProblemError(
            400, "Bad Request", detail="the request method is not valid", type_="bad-method"
        )
    if isinstance(exc, http_exceptions.PayloadEncodingError):
        return ProblemError(
            400,
            "Bad Request",
            detail="the body's Content-Length or Transfer-Encoding is not valid",
            type_="malformed-request",
        )
    if status < 500:
        return ProblemError(
            status,
            "Bad Request" if status == 400 else "Request refused",
            detail="the request line or headers are not valid HTTP/1.1",
            type_="malformed-request",
        )
    if status == 504:
        return ProblemError(504, "Gateway Timeout", type_="timeout")
    return ProblemError(status, "Internal Server Error", type_="internal")


_LINE_DETAIL = "the request line or a header is longer than 8,190 bytes"


def _raw_problem(status: int, reason: str, problem: ProblemError) -> bytes:
    body = orjson.dumps(problem.body())
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_REQUEST_TIMEOUT = _raw_problem(
    408,
    "Request Timeout",
    ProblemError(
        408,
        "Request Timeout",
        detail="the request head did not arrive in time",
        type_="request-timeout",
    ),
)


class HardenedServer(web.Server):
    """aiohttp's low-level server making :class:`HardenedRequestHandler` protocols."""

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s

    def __call__(self) -> RequestHandler:
        # The same keyword arguments aiohttp's Server hands its own RequestHandler.
        return HardenedRequestHandler(
            self, loop=self._loop, header_timeout_s=self.header_timeout_s, **self._kwargs
        )


class HardenedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are :class:`HardenedRequestHandler` protocols."""

    def __init__(
        self,
        app: web.Application,
        *,
        header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("keepalive_timeout", DEFAULT_KEEPALIVE_TIMEOUT_S)
        super().__init__(app, **kwargs)
        self.header_timeout_s = header_timeout_s

    async def _make_server(self) -> web.Server:
        # The application builds its server (startup hooks, frozen router, handler_args);
        # the result is rebuilt as a HardenedServer with the very same arguments.
        plain = await super()._make_server()
        return HardenedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            header_timeout_s=self.header_timeout_s,
            **plain._kwargs,
        )


async def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    shutdown_timeout: float = 10.0,
    stop: asyncio.Event | None = None,
    on_started: Callable[[int], None] | None = None,
    **runner_kwargs: Any,
) -> None:
    """Serve ``app`` until ``stop`` is set or SIGINT/SIGTERM arrives, then shut down gracefully
    (every ``cleanup_ctx`` runs). ``on_started`` gets the bound port."""
    runner = HardenedAppRunner(
        app,
        header_timeout_s=header_timeout_s,
        shutdown_timeout=shutdown_timeout,
        access_log=None,
        handle_signals=False,
        **runner_kwargs,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        if on_started is not None:
            on_started(int(runner.addresses[0][1]))
        await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await runner.cleanup()


def run_app(app: web.Application, *, host: str, port: int, **kwargs: Any) -> None:
    """``web.run_app`` with hardened connections: blocks until SIGINT/SIGTERM."""
    asyncio.run(serve(app, host=host, port=port, **kwargs))
