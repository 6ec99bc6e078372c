"""Images over the pixel cap (read from their headers) or unreadable never reach the model."""

from __future__ import annotations

import base64

import redis.asyncio as aioredis
from la_fakes import IMAGES, FakeGemini, Origin, analyzer_config

from link_analyzer.service import LinkAnalyzerService


async def test_bombs_and_garbage_are_left_out(
    redis_client: aioredis.Redis, origin: Origin, fake_gemini: FakeGemini
) -> None:
    cfg = analyzer_config(
        fake_gemini.base_url,
        fetch={
            "allow_networks": ["127.0.0.0/8"],
            "max_media_items": 6,
            "max_image_pixels": 16_000_000,
        },
    )
    async with LinkAnalyzerService(cfg, redis_client) as svc:
        report = await svc.analyzer.analyze(origin.url("/gallery"))
        sample = svc.metrics.registry.get_sample_value
        skipped = {
            reason: sample("haetae_link_images_skipped_total", {"reason": reason})
            for reason in ("too-many-pixels", "unreadable")
        }
    assert report["ai"]["status"] == "done"
    # small.png, mislabelled.jpg (really a PNG) and photo.jpg (12 Mpx) pass; the 2.5 Gpx PNG
    # bomb and the 600 Mpx JPEG are over the cap; the fake JPEG is unreadable.
    assert report["ai"]["media_items"] == 3
    assert skipped == {"too-many-pixels": 2, "unreadable": 1}
    parts = fake_gemini.requests[0]["contents"][0]["parts"]
    sent = [p["inlineData"] for p in parts if "inlineData" in p]
    assert [p["mime_type"] for p in sent] == ["image/png", "image/png", "image/jpeg"]
    assert base64.b64decode(sent[0]["data"]) == IMAGES["small.png"][0]
