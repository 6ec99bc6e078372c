"""Redis commands for the pipeline's own keys (lease, ledger), sent the cheap way.

Production hands :class:`~link_analyzer.singleflight.AnalysisLease` and
:class:`~link_analyzer.ledger.CostLedger` the analysis cache's auto-pipeline (``haetae.cache``'s
lean RESP connection on a standalone Redis): every command issued in one loop iteration, by any
analysis, goes out in one write and comes back in one read, instead of one redis-py round trip
(command packing, a pooled connection, a response parser) per command. Same commands, same
keys, same atomicity (Lua scripts stay scripts); only the transport differs. Without such a
pipeline (a cluster client, tests) the redis-py client is used as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError


class Commands(Protocol):
    def execute(self, *args: Any) -> Awaitable[Any]: ...


class ClientCommands:
    """One redis-py round trip per command."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    def execute(self, *args: Any) -> Awaitable[Any]:
        return self.redis.execute_command(*args)


def commands_for(redis: aioredis.Redis, pipeline: Commands | None) -> Commands:
    return pipeline if pipeline is not None else ClientCommands(redis)


class Script:
    """A Lua script run by EVALSHA, loaded by EVAL when the server does not know it yet."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, cmds: Commands, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await cmds.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not (isinstance(exc, NoScriptError) or str(exc).startswith("NOSCRIPT")):
                raise
        return await cmds.execute("EVAL", self.source, len(keys), *keys, *args)
