"""Body reading: caps, gzip (including a bomb), JSON errors; problem+json for each."""

from __future__ import annotations

import gzip

import orjson
from aiohttp import web
from tests_support import assert_problem

from haetae.web import problem_middleware
from haetae.web.bodies import HANDLER_ARGS, json_response, read_body, read_json


def make_app() -> web.Application:
    async def raw(request: web.Request) -> web.Response:
        body = await read_body(request, max_bytes=1024, max_decompressed=4096)
        return json_response({"len": len(body)})

    async def as_json(request: web.Request) -> web.Response:
        return json_response(await read_json(request, max_bytes=1024))

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app = web.Application(middlewares=[problem_middleware], handler_args=HANDLER_ARGS)
    app.router.add_post("/raw", raw)
    app.router.add_post("/json", as_json)
    app.router.add_get("/crash", crash)
    return app


async def test_plain_and_gzip_bodies(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(make_app())
    resp = await client.post("/raw", data=b"x" * 100)
    assert (await resp.json())["len"] == 100
    resp = await client.post(
        "/raw", data=gzip.compress(b"y" * 3000), headers={"Content-Encoding": "gzip"}
    )
    assert (await resp.json())["len"] == 3000


async def test_limits_and_bad_encodings(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(make_app())
    await assert_problem(await client.post("/raw", data=b"x" * 2000), 413)
    bomb = gzip.compress(b"\0" * 1_000_000)
    assert len(bomb) < 1024
    problem = await assert_problem(
        await client.post("/raw", data=bomb, headers={"Content-Encoding": "gzip"}), 413
    )
    assert "decompressed" in problem["detail"]
    await assert_problem(
        await client.post(
            "/raw", data=b"not gzip", headers={"Content-Encoding": "gzip", "Connection": "close"}
        ),
        400,
    )
    await assert_problem(
        await client.post(
            "/raw", data=gzip.compress(b"abc")[:-6], headers={"Content-Encoding": "gzip"}
        ),
        400,
    )
    problem = await assert_problem(
        await client.post("/raw", data=b"x", headers={"Content-Encoding": "br"}), 415
    )
    assert problem["field"] == "header.Content-Encoding"


async def test_json_errors(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(make_app())
    assert await (await client.post("/json", data=orjson.dumps({"a": 1}))).json() == {"a": 1}
    assert (await assert_problem(await client.post("/json", data=b"{"), 400))["field"] == "body"
    assert (await assert_problem(await client.post("/json", data=b""), 400))["field"] == "body"


async def test_unexpected_errors_are_a_500_problem_without_internals(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(make_app())
    resp = await client.get("/crash")
    problem = await assert_problem(resp, 500)
    assert "secret" not in orjson.dumps(problem).decode()
