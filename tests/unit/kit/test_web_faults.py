"""The problem middleware's seams: faults of a dependency that is down become a 503 with
Retry-After, database data errors a 400 with a warning, NUL in the URL a 400 before any handler,
and an unexpected error one bounded log line."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import orjson
import pytest
import redis.exceptions
from aiohttp import web
from tests_support import assert_problem

from haetae.web.bodies import HANDLER_ARGS, read_form, read_json
from haetae.web.errorlog import MAX_LOGGED_CHARS, FaultLogThrottle
from haetae.web.guard import input_guard_middleware
from haetae.web.problem import ProblemError, problem_middleware_with

RAISED: dict[str, BaseException] = {
    "pg-closed": asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    "pg-shutdown": asyncpg.exceptions.AdminShutdownError("terminating connection"),
    "pg-pool-closed": asyncpg.exceptions.InterfaceError("pool is closing"),
    "pg-too-many": asyncpg.exceptions.TooManyConnectionsError("too many clients"),
    "acquire-timeout": TimeoutError(),
    "refused": ConnectionRefusedError(111, "Connection refused"),
    "multi-refused": OSError("Multiple exceptions: [Errno 111] Connect call failed"),
    "redis-down": redis.exceptions.ConnectionError("Error 111 connecting"),
    "redis-pool": redis.exceptions.ConnectionError("Too many connections"),
    "redis-timeout": redis.exceptions.TimeoutError("Timeout reading from socket"),
}
DATA_ERRORS: dict[str, BaseException] = {
    "nul": asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence 0x00"),
    "range": asyncpg.exceptions.NumericValueOutOfRangeError("integer out of range"),
    "index": asyncpg.exceptions.ProgramLimitExceededError("index row size 3872 exceeds"),
    "int64": asyncpg.exceptions._base.DataError("invalid input for query argument $1"),
    "year": asyncpg.exceptions.DatetimeFieldOverflowError("date/time field value out of range"),
}


def make_app() -> web.Application:
    async def fault(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        raise (RAISED | DATA_ERRORS)[name]

    async def ok(request: web.Request) -> web.Response:
        if request.match_info["tail"] == "quote":
            name = request.query["name"]
            raise ProblemError(400, "Invalid request", detail=f"unknown {name!r}", field=name)
        return web.json_response({"q": dict(request.query)})

    async def deep(request: web.Request) -> web.Response:
        def down(n: int) -> int:
            return down(n + 1) + 1

        return web.json_response(down(0))

    async def missing_file(request: web.Request) -> web.Response:
        raise FileNotFoundError(2, "No such file", "/nonexistent/haetae")  # a bug, not an outage
        return web.json_response({})

    async def as_json(request: web.Request) -> web.Response:
        return web.json_response(await read_json(request))

    async def form(request: web.Request) -> web.Response:
        return web.json_response(await read_form(request))

    # Every fault logged: the tests below count the lines.
    problems = problem_middleware_with(throttle=FaultLogThrottle(interval_s=0))
    app = web.Application(middlewares=[problems, input_guard_middleware], handler_args=HANDLER_ARGS)
    app.router.add_get("/fault/{name}", fault)
    app.router.add_get("/ok/{tail:.*}", ok)
    app.router.add_get("/deep", deep)
    app.router.add_get("/file", missing_file)
    app.router.add_post("/json", as_json)
    app.router.add_post("/form", form)
    return app


async def test_dependency_outages_are_503_with_retry_after(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app())
    for name in RAISED:
        resp = await client.get(f"/fault/{name}")
        problem = await assert_problem(resp, 503)
        assert int(resp.headers["Retry-After"]) > 0, name
        assert "111" not in orjson.dumps(problem).decode()


async def test_a_bug_is_still_a_500(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app())
    resp = await client.get("/file")
    await assert_problem(resp, 500)
    assert "Retry-After" not in resp.headers


async def test_database_data_errors_are_400_and_warn_that_the_seam_missed(
    aiohttp_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await aiohttp_client(make_app())
    for name in DATA_ERRORS:
        caplog.clear()
        with caplog.at_level(logging.WARNING, "haetae.web"):
            problem = await assert_problem(await client.get(f"/fault/{name}"), 400)
        assert problem["type"].endswith("invalid-field")
        assert any("validation seam" in r.getMessage() for r in caplog.records), name


async def test_nul_in_path_or_query_never_reaches_a_handler(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app())
    cases = {
        "/ok/a%00b": "path",
        "/ok/x?name=a%00b": "query.name",
        "/ok/x?a%00b=1": "query.a\\0b",
        "/fault/pg-closed%00": "path",  # refused before the handler could raise anything
    }
    for url, field in cases.items():
        problem = await assert_problem(await client.get(url), 400)
        assert problem["field"] == field, url
    resp = await client.get("/ok/x?name=fine%20value")
    assert (await resp.json())["q"] == {"name": "fine value"}


async def test_instance_and_detail_do_not_echo_huge_input(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app())
    resp = await client.get("/nowhere/" + "x" * 7000)
    problem = await assert_problem(resp, 404)
    assert len(problem["instance"]) <= 256
    assert len(await resp.read()) < 1024
    # A route that quotes its input in the detail still answers a bounded body.
    resp = await client.get("/ok/quote?name=" + "y" * 6000)
    problem = await assert_problem(resp, 400)
    assert len(problem["detail"]) <= 1024 and len(problem["field"]) <= 128


async def test_recursion_error_logs_one_bounded_line(
    aiohttp_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await aiohttp_client(make_app())
    with caplog.at_level(logging.ERROR, "haetae.web"):
        await assert_problem(await client.get("/deep"), 500)
    (record,) = [r for r in caplog.records if r.name == "haetae.web"]
    assert record.exc_info is None  # no unbounded traceback from the handler
    stack = record.__dict__["error.stack_trace"]
    assert "RecursionError" in stack and len(stack) <= MAX_LOGGED_CHARS + 64
    assert len(record.getMessage()) < 1024


async def test_json_routes_refuse_other_media_types_with_415(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app())
    for ctype in ("multipart/form-data; boundary=zzz", "application/xml", "image/png"):
        problem = await assert_problem(
            await client.post("/json", data=b"{}", headers={"Content-Type": ctype}), 415
        )
        assert problem["field"] == "header.Content-Type"
    for ctype in ("application/json", "application/merge-patch+json", "text/plain"):
        resp = await client.post("/json", data=b'{"a":1}', headers={"Content-Type": ctype})
        assert resp.status == 200, ctype


async def test_forms_with_a_bad_boundary_or_bytes_are_400(aiohttp_client: Any) -> None:
    client = await aiohttp_client(make_app())
    part = b"--abc\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--abc--\r\n"
    bad = {
        "multipart/form-data; boundary=zzz": part,
        "multipart/form-data": part,
        "multipart/form-data; boundary=abc": b"--abc\r\nbroken header\r\n\r\n",
        "application/x-www-form-urlencoded": b"a=\xff\xfe",
    }
    for ctype, data in bad.items():
        await assert_problem(
            await client.post("/form", data=data, headers={"Content-Type": ctype}), 400
        )
    problem = await assert_problem(
        await client.post(
            "/form",
            data=b"note=a%00b",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        400,
    )
    assert problem["field"] == "form.note"
    await assert_problem(
        await client.post("/form", data=b"{}", headers={"Content-Type": "application/json"}), 415
    )
    resp = await client.post(
        "/form", data=part, headers={"Content-Type": "multipart/form-data; boundary=abc"}
    )
    assert await resp.json() == {"x": "1"}


def test_repeated_faults_are_logged_once_per_interval_with_a_count() -> None:
    now = [100.0]
    throttle = FaultLogThrottle(interval_s=10, clock=lambda: now[0])
    assert throttle.admit("db") == 0
    assert [throttle.admit("db") for _ in range(5)] == [None] * 5
    assert throttle.admit("redis") == 0  # another kind has its own budget
    now[0] += 10
    assert throttle.admit("db") == 5
    assert throttle.admit("db") is None
