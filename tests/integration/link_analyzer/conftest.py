"""Fixtures for the link-analyzer integration tests (the fakes live in ``la_fakes.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer
from la_fakes import FakeGemini, Origin, build_gemini_app, build_origin_app


@pytest.fixture
async def origin(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Origin:
    o = Origin(server=None)  # type: ignore[arg-type]
    o.server = await aiohttp_server(build_origin_app(o), host="127.0.0.1")
    return o


@pytest.fixture
async def fake_gemini(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> FakeGemini:
    fake = FakeGemini(server=None)  # type: ignore[arg-type]
    fake.server = await aiohttp_server(build_gemini_app(fake), host="127.0.0.1")
    return fake
