"""The Gemini cost ledger: token usage from each call's usage metadata, priced from config,
summed per call (a capped log), per URL and per day. One Lua script per record."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from link_analyzer.keys import LedgerKeys
from link_analyzer.rediscmd import Commands, Script, commands_for


@dataclass(frozen=True)
class Usage:
    model: str
    prompt_tokens: int
    output_tokens: int
    total_tokens: int
    # Answered through the Batch API: priced at the batch rates.
    batch: bool = False


@dataclass(frozen=True)
class Prices:
    """USD per million tokens."""

    input_per_mtok: float = 0.10
    output_per_mtok: float = 0.40

    def cost_micros(self, usage: Usage) -> int:
        # micro-USD per token = USD per Mtok, so the products are already in micros.
        return round(
            usage.prompt_tokens * self.input_per_mtok + usage.output_tokens * self.output_per_mtok
        )


_RECORD = """
for i = 1, 2 do
  redis.call('HINCRBY', KEYS[i], 'calls', 1)
  redis.call('HINCRBY', KEYS[i], 'prompt_tokens', ARGV[1])
  redis.call('HINCRBY', KEYS[i], 'output_tokens', ARGV[2])
  redis.call('HINCRBY', KEYS[i], 'cost_micros', ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], 0, 9999)
return 1
"""


class CostLedger:
    def __init__(
        self,
        redis: aioredis.Redis,
        prices: Prices | None = None,
        *,
        keys: LedgerKeys | None = None,
        retention_days: int = 90,
        batch_prices: Prices | None = None,
        pipeline: Commands | None = None,
    ) -> None:
        """``pipeline``: book through it (the analysis cache's auto-pipeline, ``rediscmd``)
        instead of one redis-py round trip per record; the script is the same."""
        self.redis = redis
        self._cmds = commands_for(redis, pipeline)
        self.prices = prices or Prices()
        self.batch_prices = batch_prices or self.prices
        self.keys = keys or LedgerKeys()
        self._ttl_s = retention_days * 86400
        self._record = Script(_RECORD)

    async def record(self, url_key: str, usage: Usage, *, now: float | None = None) -> int:
        """Book one call; returns its cost in micro-USD."""
        now = time.time() if now is None else now
        cost = (self.batch_prices if usage.batch else self.prices).cost_micros(usage)
        entry = orjson.dumps(
            {
                "batch": usage.batch,
                "at": round(now, 3),
                "url_hash": url_key,
                "model": usage.model,
                "prompt_tokens": usage.prompt_tokens,
                "output_tokens": usage.output_tokens,
                "cost_micros": cost,
            }
        )
        await self._record(
            self._cmds,
            [self.keys.day(_day(now)), self.keys.url(url_key), self.keys.calls],
            [usage.prompt_tokens, usage.output_tokens, cost, entry, self._ttl_s],
        )
        return cost

    async def day(self, day: str) -> dict[str, int]:
        return _ints(await self.redis.hgetall(self.keys.day(day)))

    async def for_url(self, url_key: str) -> dict[str, int]:
        return _ints(await self.redis.hgetall(self.keys.url(url_key)))

    async def recent_calls(self, limit: int = 100) -> list[dict[str, Any]]:
        return [orjson.loads(x) for x in await self.redis.lrange(self.keys.calls, 0, limit - 1)]


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _ints(raw: dict[Any, Any]) -> dict[str, int]:
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
