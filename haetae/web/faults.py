"""Third-party exceptions translated to problem answers at one seam (the problem middleware).

A dependency being down is the server's trouble, not the caller's, and it passes: a 503 with
``Retry-After`` tells a client (and a load balancer) to come back, where a 500 says "bug". Data
errors from PostgreSQL mean the validation seam let something through that the database refuses:
the caller still gets the 400 it deserves, and a warning says where the seam has a hole.

The table is built on first use so that importing the kit loads neither asyncpg nor redis-py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from aiohttp import http_exceptions, web_protocol

RETRY_AFTER_S = 5


@dataclass(frozen=True)
class Fault:
    """What an exception class means to a caller."""

    status: int
    type_: str
    title: str
    detail: str
    # Set for faults that pass: sent as ``Retry-After``.
    retry_after_s: int | None = None
    # Set for faults the validation seam should have caught first: logged as a warning.
    seam_missed: bool = False


_DATABASE_DOWN = Fault(
    503,
    "database-unavailable",
    "Service Unavailable",
    "the database is unreachable or overloaded; retry later",
    retry_after_s=RETRY_AFTER_S,
)
_REDIS_DOWN = Fault(
    503,
    "redis-unavailable",
    "Service Unavailable",
    "Redis is unreachable or overloaded; retry later",
    retry_after_s=RETRY_AFTER_S,
)
_UPSTREAM_DOWN = Fault(
    503,
    "dependency-unavailable",
    "Service Unavailable",
    "a dependency did not answer in time or refused the connection; retry later",
    retry_after_s=RETRY_AFTER_S,
)
_DATA_REFUSED = Fault(
    400,
    "invalid-field",
    "Invalid request",
    "a value is out of range or not representable",
    seam_missed=True,
)
_MALFORMED_BODY = Fault(400, "malformed-body", "Malformed body", "the request body is malformed")

FaultTable = tuple[tuple[tuple[type[BaseException], ...], Fault], ...]


@functools.cache
def default_faults() -> FaultTable:
    """Ordered: the first row whose classes match wins (asyncpg's client-side DataError is also
    an InterfaceError, so data errors come before "connection lost")."""
    rows: list[tuple[tuple[type[BaseException], ...], Fault]] = []
    try:
        import asyncpg.exceptions as pg

        # asyncpg's client-side encoding error (an int past int64, a str for a number); it has
        # no public name, as asyncpg.DataError is the server's SQLSTATE class 22.
        from asyncpg.exceptions._base import DataError as ClientDataError
    except ImportError:  # pragma: no cover - the kit without its database extra
        pass
    else:
        rows.append(((pg.DataError, ClientDataError, pg.ProgramLimitExceededError), _DATA_REFUSED))
        rows.append(
            (
                (
                    pg.PostgresConnectionError,
                    pg.OperatorInterventionError,  # admin shutdown, cannot connect now
                    pg.InsufficientResourcesError,  # too many connections
                    pg.InterfaceError,  # pool or connection closed under us
                    pg.InternalClientError,
                ),
                _DATABASE_DOWN,
            )
        )
    try:
        import redis.exceptions as rd
    except ImportError:  # pragma: no cover
        pass
    else:
        rows.append(((rd.ConnectionError, rd.TimeoutError), _REDIS_DOWN))
    # A pool acquire timeout, a refused or reset connection (asyncpg raises plain OSError
    # "Multiple exceptions: [Errno 111] ..." when every address refuses).
    rows.append(((TimeoutError, ConnectionError), _UPSTREAM_DOWN))
    # A body that aiohttp cannot parse while the handler reads it (bad chunked encoding,
    # a broken multipart part).
    rows.append(
        ((http_exceptions.HttpProcessingError, web_protocol.RequestPayloadError), _MALFORMED_BODY)
    )
    return tuple(rows)


def fault_for(exc: BaseException, table: FaultTable | None = None) -> Fault | None:
    for classes, fault in default_faults() if table is None else table:
        if isinstance(exc, classes):
            return fault
    # Only a bare OSError: its subclasses (FileNotFoundError, PermissionError) are bugs here.
    if type(exc) is OSError:
        return _UPSTREAM_DOWN
    return None
