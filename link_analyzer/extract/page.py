"""From a fetched page to metadata, parsing big pages off the event loop."""

from __future__ import annotations

import asyncio

from link_analyzer.extract.metadata import Metadata, extract_metadata
from link_analyzer.extract.naver import extract_naver, is_naver_blog
from link_analyzer.fetch import FetchResult

# Below this size parsing takes well under a millisecond: a thread hop would cost more.
OFFLOAD_OVER_BYTES = 32 * 1024


async def extract_page(page: FetchResult) -> Metadata:
    text = page.text()
    parse = extract_naver if is_naver_blog(page.final_url, page.body) else extract_metadata
    if len(page.body) > OFFLOAD_OVER_BYTES:
        return await asyncio.to_thread(parse, text, page.final_url)
    return parse(text, page.final_url)
