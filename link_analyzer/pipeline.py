"""One link, end to end: canonicalise -> cache -> fetch + extract -> quality filter -> AI stage.

Metadata is cached per URL key with the platform's TTL; the AI analysis is cached per *content
hash*, so an expired page whose content did not change is refreshed without a new model call,
and two URLs with the same content share one analysis. Only one worker in the fleet analyses a
given content at a time (``singleflight.AnalysisLease``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import orjson
from redis.exceptions import RedisError

from link_analyzer.cache import AnalysisCache
from link_analyzer.config import LinkAnalyzerConfig
from link_analyzer.errors import AnalysisBusy, AnalyzerError, FetchError
from link_analyzer.extract import (
    Metadata,
    assess,
    extract_page,
    merge_oembed,
    oembed_endpoint,
    parse_oembed,
)
from link_analyzer.extract.imagesize import check_image
from link_analyzer.extract.oembed import MAX_OEMBED_BYTES
from link_analyzer.fetch import Fetcher
from link_analyzer.gemini import AnalysisInput, GeminiAnalyzer, MediaPart
from link_analyzer.gemini_batch import GeminiBatcher, batch_wait
from link_analyzer.ledger import CostLedger
from link_analyzer.metrics import LinkAnalyzerMetrics, Result
from link_analyzer.platforms import Platform
from link_analyzer.singleflight import AnalysisLease
from link_analyzer.urls import CanonicalUrl, canonicalize

_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")


def content_hash(meta: Metadata) -> str:
    """What the model would see, hashed: same content -> same analysis."""
    salient = {
        "title": meta.title,
        "description": meta.description,
        "images": list(meta.images),
        "videos": list(meta.videos),
        "text": meta.body_text[:4000],
    }
    return hashlib.sha256(orjson.dumps(salient, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


class StageStatus(StrEnum):
    DISABLED = "disabled"
    SKIPPED = "skipped"
    DONE = "done"


class LinkAnalyzer:
    def __init__(
        self,
        config: LinkAnalyzerConfig,
        *,
        cache: AnalysisCache,
        fetcher: Fetcher,
        lease: AnalysisLease,
        gemini: GeminiAnalyzer | None = None,
        batcher: GeminiBatcher | None = None,
        ledger: CostLedger | None = None,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
        metrics: LinkAnalyzerMetrics | None = None,
    ) -> None:
        self.config = config
        self.cache = cache
        self.fetcher = fetcher
        self.lease = lease
        self.gemini = gemini
        self.batcher = batcher
        self.ledger = ledger
        self.clock = clock
        self.log = logger or logging.getLogger("haetae.link_analyzer")
        self.metrics = metrics or LinkAnalyzerMetrics()

    async def resolve(self, raw_url: str) -> CanonicalUrl:
        """Canonical form; short links are resolved by one guarded hop (and remembered)."""
        canon = canonicalize(raw_url)
        if not canon.short:
            return canon
        target = await self.cache.get_short_link(canon.key)
        if target is None:
            target = await self.fetcher.resolve_redirect(canon.url)
            await self.cache.put_short_link(canon.key, target, self.config.cache.short_link_ttl_s)
        # One hop only: a short link pointing at another short link stays keyed by that one.
        return canonicalize(target)

    async def analyze(
        self, raw_url: str, *, refresh: bool = False, batch: bool = False
    ) -> dict[str, Any]:
        """``batch``: the model call may go through the Batch API (queued low-priority work)."""
        started = time.monotonic()
        try:
            report = await self._analyze(raw_url, refresh=refresh, batch=batch, started=started)
        except AnalyzerError as exc:
            self.metrics.failed(exc)
            raise
        self.metrics.analyses.labels(_result(report).value).inc()
        self.metrics.duration.observe(time.monotonic() - started)
        return report

    async def _analyze(
        self, raw_url: str, *, refresh: bool, batch: bool, started: float
    ) -> dict[str, Any]:
        canon = await self.resolve(raw_url)
        page = None if refresh else await self.cache.get_metadata(canon.key)
        metadata_cached = page is not None
        if page is None:
            page = await self._fetch_page(canon)
            ttl = self.config.cache.ttl_for(canon.platform)
            await self.cache.put_metadata(canon.key, page, ttl)
        ai, analysis_cached = await self._ai_stage(canon, page, batch=batch)
        return {
            "url": raw_url,
            "canonical_url": canon.url,
            "url_hash": canon.key,
            "platform": canon.platform.value,
            "content_id": canon.content_id,
            "metadata": page["metadata"],
            "quality": page["quality"],
            "content_hash": page["content_hash"],
            "fetched_at": page["fetched_at"],
            "ai": ai,
            "cached": {"metadata": metadata_cached, "analysis": analysis_cached},
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
        }

    async def _fetch_page(self, canon: CanonicalUrl) -> dict[str, Any]:
        # A Naver blog post is in the mobile page's body, not in its head.
        fetched = await self.fetcher.fetch_html(
            canon.url, whole=canon.platform is Platform.NAVER_BLOG
        )
        meta = await extract_page(fetched)
        meta = await self._with_oembed(canon, meta)
        quality = assess(meta, fetched.final_url, min_text_chars=self.config.min_text_chars)
        return {
            "final_url": fetched.final_url,
            "metadata": meta.as_dict(),
            "text": meta.body_text[:4000],
            "quality": {"verdict": quality.verdict.value, "reason": quality.reason},
            "content_hash": content_hash(meta),
            "fetched_at": round(self.clock(), 3),
        }

    async def _with_oembed(self, canon: CanonicalUrl, meta: Metadata) -> Metadata:
        """Video platforms (and pages without a title) get their oEmbed data merged in."""
        wants = canon.platform in (Platform.YOUTUBE, Platform.TIKTOK) or not meta.title
        endpoint = oembed_endpoint(canon.platform, canon.url, meta.oembed_url) if wants else None
        if endpoint is None:
            return meta
        try:
            got = await self.fetcher.fetch_json(endpoint, MAX_OEMBED_BYTES)
        except AnalyzerError as exc:
            self.log.info("oEmbed for %s unavailable: %s", canon.key, exc)
            return meta
        data = None if got.truncated else parse_oembed(got.body)
        return merge_oembed(meta, data, got.final_url) if data else meta

    async def _ai_stage(
        self, canon: CanonicalUrl, page: dict[str, Any], *, batch: bool = False
    ) -> tuple[dict[str, Any], bool]:
        quality = page["quality"]
        if quality["verdict"] != "ok":
            return {"status": StageStatus.SKIPPED, "reason": quality["reason"]}, False
        if self.gemini is None:
            return {"status": StageStatus.DISABLED, "reason": "GEMINI_API_KEY is not set"}, False
        digest = page["content_hash"]
        cached = await self.cache.get_analysis(digest)
        if cached is not None:
            return cached, True
        # The lease stays short and its live holder renews it (``AnalysisLease.hold``): one
        # that dies (even while waiting an hour on a batch) frees the content within lease_ttl.
        lease_ttl = self.config.gemini.timeout_s + self.config.fetch.total_timeout_s
        wait_s = lease_ttl
        batch = batch and self.batcher is not None
        if batch:
            # A batch answers within its own deadline, not a call's (nor the job's timeout).
            g = self.config.gemini
            wait_s = max(
                lease_ttl, self.config.queue.job_timeout_s, g.batch_deadline_s + g.batch_max_wait_s
            )
        deadline = time.monotonic() + wait_s
        one_step = True
        while True:
            token, answered, checked = await self._claim(digest, lease_ttl, one_step=one_step)
            if token is not None:
                hold = getattr(self.lease, "hold", None)
                renewing = (
                    asyncio.create_task(hold(digest, token, lease_ttl))
                    if hold is not None
                    else None
                )
                try:
                    if not checked:
                        # Someone may have finished between our miss and our lease.
                        cached = await self.cache.get_analysis(digest)
                        if cached is not None:
                            return cached, True
                    result = await self._call_model(canon, page, digest, batch=batch)
                    await self.cache.put_analysis(digest, result, self.config.cache.analysis_ttl_s)
                    return result, False
                finally:
                    if renewing is not None:
                        renewing.cancel()
                        await asyncio.gather(renewing, return_exceptions=True)
                    await self.lease.release(digest, token)
            if answered:
                # Finished between our miss and the claim: read it the usual way (L1 filled).
                cached = await self.cache.get_analysis(digest)
                if cached is not None:
                    return cached, True
                # Stored but unreadable here (L2 unhealthy, a record of another version):
                # from now on the lease alone decides, as it did before the one-step claim.
                one_step = False
            # Another worker is analysing this content: wait for its answer (or its lease
            # to lapse, if it died, and take over).
            if time.monotonic() >= deadline:
                raise AnalysisBusy(digest)
            # Waiting on a batched answer does not count against this job's timeout either.
            with batch_wait(wait_s) if batch else contextlib.nullcontext():
                await asyncio.sleep(0.05)
            cached = await self.cache.get_analysis(digest)
            if cached is not None:
                return cached, True

    async def _claim(
        self, digest: str, lease_ttl: float, *, one_step: bool = True
    ) -> tuple[str | None, bool, bool]:
        """``(token, answered, checked)``: the lease (or None) and whether the stored answer
        was seen; ``checked``: the lease came with the answer checked absent in the same
        round trip (``AnalysisLease.acquire_unless``), so no re-check is needed."""
        key_of = getattr(self.cache, "analysis_l2_key", None) if one_step else None
        answer_key = key_of(digest) if key_of is not None else None
        acquire_unless = getattr(self.lease, "acquire_unless", None)
        if answer_key is None or acquire_unless is None:
            return await self.lease.acquire(digest, lease_ttl), False, False
        token, answered = await acquire_unless(digest, lease_ttl, answer_key)
        return token, answered, True

    async def _call_model(
        self, canon: CanonicalUrl, page: dict[str, Any], digest: str, *, batch: bool = False
    ) -> dict[str, Any]:
        assert self.gemini is not None
        meta = page["metadata"]
        media = await self._fetch_media(meta["images"][: self.config.fetch.max_media_items])
        item = AnalysisInput(
            url=canon.url,
            title=meta.get("title"),
            description=meta.get("description"),
            site_name=meta.get("site_name"),
            text=page.get("text", ""),
            media=media,
        )
        try:
            if batch and self.batcher is not None:
                analysis, usage = await self.batcher.analyze(item)
            else:
                analysis, usage = await self.gemini.analyze(item)
        except AnalyzerError:
            self.metrics.gemini_failed(batch=batch and self.batcher is not None)
            raise
        cost: int | None = None
        if self.ledger is not None:
            try:
                cost = await self.ledger.record(canon.key, usage)
            except RedisError as exc:
                # The answer is paid for already; losing its ledger line beats losing it.
                self.log.error("cost ledger write failed for %s: %s", canon.key, exc)
        self.metrics.gemini_call(usage, cost)
        return {
            "status": StageStatus.DONE,
            "analysis": analysis.model_dump(),
            "model": usage.model,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "output_tokens": usage.output_tokens,
                "cost_micros": cost,
            },
            "content_hash": digest,
            "media_items": len(media),
            "batch": usage.batch,
        }

    async def _fetch_media(self, urls: list[str]) -> tuple[MediaPart, ...]:
        """Images in parallel under the same guard; ones that fail or are cut are left out,
        and so are ones whose header is unreadable or whose decoded size is over the pixel cap
        (read from the header only: nothing is decoded here)."""
        results = await self.fetcher.fetch_many(urls, media=True)
        parts: list[MediaPart] = []
        for url, got in zip(urls, results, strict=True):
            if isinstance(got, FetchError):
                self.metrics.fetch_failed(got, kind="media")
            elif not got.truncated:
                mime = got.content_type.split(";")[0].strip().lower()
                if mime in _IMAGE_TYPES:
                    size, skip = check_image(got.body, self.config.fetch.max_image_pixels)
                    if skip is not None:
                        self.metrics.images_skipped.labels(skip.value).inc()
                        self.log.info("image %s left out: %s (%s)", url[:200], skip.value, size)
                        continue
                    assert size is not None
                    # The bytes decide the type (origins mislabel images).
                    parts.append(MediaPart(got.body, size.mime_type))
        return tuple(parts)


def _result(report: dict[str, Any]) -> Result:
    status = report["ai"]["status"]
    if status == StageStatus.SKIPPED:
        return Result.SKIPPED
    if status == StageStatus.DISABLED:
        return Result.CACHED if report["cached"]["metadata"] else Result.DISABLED
    if not report["cached"]["analysis"]:
        return Result.ANALYSED
    return Result.CACHED if report["cached"]["metadata"] else Result.REUSED
