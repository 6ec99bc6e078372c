"""Every Redis key the link analyzer uses, in one place.

Queue keys share the ``{la-q}`` hash tag, so on Redis Cluster they live in one slot and the queue's
Lua scripts (which touch job hashes they discover while running) stay legal. Cache keys carry no
tag: they spread over the cluster, and no script touches two of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueKeys:
    prefix: str = "haetae:la:{la-q}:"

    @property
    def queued(self) -> str:
        return self.prefix + "queued"

    @property
    def delayed(self) -> str:
        return self.prefix + "delayed"

    @property
    def active(self) -> str:
        return self.prefix + "active"

    @property
    def dead(self) -> str:
        return self.prefix + "dead"

    @property
    def seq(self) -> str:
        return self.prefix + "seq"

    @property
    def wake(self) -> str:
        return self.prefix + "wake"

    @property
    def job_prefix(self) -> str:
        return self.prefix + "job:"

    @property
    def dedup_prefix(self) -> str:
        return self.prefix + "dedup:"

    def job(self, job_id: str) -> str:
        return self.job_prefix + job_id

    def dedup(self, url_key: str) -> str:
        return self.dedup_prefix + url_key


@dataclass(frozen=True)
class CacheKeys:
    prefix: str = "haetae:la:cache:"

    def metadata(self, url_key: str) -> str:
        return f"{self.prefix}meta:{url_key}"

    def analysis(self, content_hash: str) -> str:
        return f"{self.prefix}ai:{content_hash}"

    def short_link(self, url_key: str) -> str:
        return f"{self.prefix}short:{url_key}"

    def lease(self, content_hash: str) -> str:
        return f"{self.prefix}lease:{content_hash}"

    @property
    def stats(self) -> str:
        return self.prefix + "stats"

    @property
    def recent(self) -> str:
        """Sorted set: URL key -> when its metadata was last stored (the warm-up's source)."""
        return self.prefix + "recent"


@dataclass(frozen=True)
class LedgerKeys:
    # One hash tag: the ledger script updates three of these keys at once.
    prefix: str = "haetae:la:{la-cost}:"

    def day(self, day: str) -> str:
        return f"{self.prefix}day:{day}"

    def url(self, url_key: str) -> str:
        return f"{self.prefix}url:{url_key}"

    @property
    def calls(self) -> str:
        return self.prefix + "calls"
