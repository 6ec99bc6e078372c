"""A long-lived worker thread for blocking calls, cheaper per call than ``asyncio.to_thread``.

Each cycle hands psutil reads and the spool's fdatasync to a thread. ``to_thread`` goes through a
thread pool, a ``concurrent.futures.Future`` chained to an asyncio one and a context copy, and its
answer takes two turns of the event loop; on a small VM that made the hand-offs a sixth of the
agent's CPU per cycle. Here a call is a queue put, and its result one ``call_soon_threadsafe``.

Calls run one at a time, in order. A call whose awaiting task was cancelled (a timeout) still
runs to its end; its result is dropped. The thread exits when the ``Worker`` is garbage
collected or closed, and never keeps the interpreter from exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Item = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Worker:
    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the worker thread; its result or exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(
                target=_serve, args=(self._queue,), name=self._name, daemon=True
            )
            self._thread.start()
            # The thread holds only the queue, so this object can be collected; then it exits.
            weakref.finalize(self, self._queue.put, None)
        self._queue.put((loop, future, fn, args))
        return await future

    def close(self) -> None:
        """Let the thread exit once the calls already handed over are done."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread = None


def _serve(q: queue.SimpleQueue[_Item | None]) -> None:
    while (item := q.get()) is not None:
        loop, future, fn, args = item
        try:
            result, error = fn(*args), None
        except BaseException as exc:  # handed back to the awaiting task, which decides
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, future, result, error)
        del item, future, fn, args, result, error  # hold nothing while idle


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
