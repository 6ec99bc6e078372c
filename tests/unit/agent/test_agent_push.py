"""``POST /v1/push`` without sockets: parsing both body forms, refusals as problems, the bearer
token, and the urgent report sender (spacing, every pushed sample reported exactly once)."""

from __future__ import annotations

import asyncio
import math

import orjson
import pytest
from prometheus_client import CollectorRegistry

from agent.collectors.base import Sample
from agent.http.server import Request
from agent.push import Push, PushRefused, parse_push
from agent.report import decode_report, encode_report
from agent.runner import Cycle

NOW = 1_800_000_000.0
JSON = "application/json"


def test_text_form_stamps_samples_with_the_arrival_time() -> None:
    body = b'# TYPE demo_value gauge\ndemo_value 1\njobs{queue="a b"} 7 1800000000500\n'
    samples = parse_push(body, "text/plain; version=0.0.4", NOW)
    assert parse_push(body, "application/x-www-form-urlencoded", NOW) == samples
    assert samples == [
        Sample("demo_value", {}, 1.0, NOW),
        Sample("jobs", {"queue": "a b"}, 7.0, NOW + 0.5),
    ]


def test_json_form() -> None:
    body = orjson.dumps(
        {
            "samples": [
                {"name": "demo_value", "value": 2},
                {"name": "x", "labels": {"k": "v"}, "value": "+Inf", "ts": NOW - 1},
            ]
        }
    )
    samples = parse_push(body, "application/json", NOW)
    assert samples[0] == Sample("demo_value", {}, 2.0, NOW)
    assert samples[1].labels == {"k": "v"} and math.isinf(samples[1].value)
    assert samples[1].ts == NOW - 1


@pytest.mark.parametrize(
    ("body", "ctype", "status", "field"),
    [
        (b"", "text/plain", 400, "body"),
        (b"demo value 1 2 3\n", "text/plain", 400, "body"),
        (b"\xff\xfe", "text/plain", 400, "body"),
        (b'{"samples": [}', "application/json", 400, "body"),
        (b"[]", "application/json", 400, "samples"),
        (
            b'{"samples": [{"name": "1bad", "value": 1}]}',
            "application/json",
            400,
            "samples[0].name",
        ),
        # what PostgreSQL would refuse, or what would not fit the series index (issue 9)
        (
            b'{"samples": [{"name": "a", "labels": {"k": "x\\u0000y"}, "value": 1}]}',
            "application/json",
            400,
            "samples[0].labels.k",
        ),
        (
            b'{"samples": [{"name": "a", "labels": {"k": "' + b"v" * 1025 + b'"}, "value": 1}]}',
            "application/json",
            400,
            "samples[0].labels.k",
        ),
        (
            orjson.dumps(
                {
                    "samples": [
                        {"name": "a", "value": 1, "labels": {f"l{i}": "v" * 200 for i in range(12)}}
                    ]
                }
            ),
            "application/json",
            400,
            "samples[0].labels",
        ),
        (b'{"samples": [{"name": "a", "value": 1', "application/json", 400, "body"),
        (b'{"samples": [{"name": "a\xff", "value": 1}]}', "application/json", 400, "body"),
        (b'a{k="x\x00y"} 1\n', "text/plain", 400, "body"),
        (
            b'{"samples": [{"name": "a", "value": true}]}',
            "application/json",
            400,
            "samples[0].value",
        ),
        (
            b'{"samples": [{"name": "a", "value": "1"}]}',
            "application/json",
            400,
            "samples[0].value",
        ),
        (
            b'{"samples": [{"name": "a", "labels": {"k": 1}, "value": 1}]}',
            "application/json",
            400,
            "samples[0].labels",
        ),
        (
            b'{"samples": [{"name": "a", "value": 1, "ts": 9999999999}]}',
            "application/json",
            400,
            "samples[0].ts",
        ),
        (b"a 1\n", "application/vnd.google.protobuf; proto=x", 415, "header.Content-Type"),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(
    body: bytes, ctype: str, status: int, field: str
) -> None:
    with pytest.raises(PushRefused) as err:
        parse_push(body, ctype, NOW)
    assert (err.value.status, err.value.field) == (status, field)
    code, media, raw, _ = err.value.answer()
    assert (code, media) == (status, "application/problem+json")
    assert orjson.loads(raw)["field"] == field


def test_text_the_control_plane_would_refuse_is_refused_whole() -> None:
    body = f'ok 1\nbad{{l="{"x" * 5000}"}} 1\n'.encode()
    with pytest.raises(PushRefused, match="1 samples"):
        parse_push(body, "text/plain", NOW)


class Sink:
    def __init__(self) -> None:
        self.cycles: list[Cycle] = []
        self.gate: asyncio.Event | None = None

    async def submit(self, cycle: Cycle) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.cycles.append(cycle)


def _req(body: bytes, **headers: str) -> Request:
    return Request("/v1/push", {"content-type": "text/plain", **headers}, body)


async def test_a_push_is_reported_at_once_in_an_urgent_report() -> None:
    sink = Sink()
    push = Push(sink.submit, CollectorRegistry(), clock=lambda: NOW)
    status, media, body, _ = push.handle(_req(b"demo_value 1\n"))
    assert (status, media, orjson.loads(body)) == (202, "application/json", {"accepted": 1})
    for _ in range(5):
        await asyncio.sleep(0)
    (cycle,) = sink.cycles
    assert cycle.urgent and cycle.samples == [Sample("demo_value", {}, 1.0, NOW)]
    assert [c.name for c in cycle.collectors] == ["push"]
    assert push.pending == 0
    doc = decode_report(encode_report(report_id="r", seq=1, cycle=cycle))
    assert doc["urgent"] is True and doc["samples"][0]["ts"] == NOW
    await push.close()


async def test_urgent_reports_are_spaced_and_nothing_is_reported_twice() -> None:
    sink = Sink()
    push = Push(sink.submit, CollectorRegistry(), min_interval_s=0.2, clock=lambda: NOW)
    push.handle(_req(b"a 1\n"))
    await asyncio.sleep(0.01)
    assert len(sink.cycles) == 1
    push.handle(_req(b"a 2\n"))
    push.handle(_req(b"a 3\n"))
    await asyncio.sleep(0.05)
    assert len(sink.cycles) == 1  # within min_interval_s of the last urgent report
    await asyncio.sleep(0.25)
    assert [[s.value for s in c.samples] for c in sink.cycles] == [[1.0], [2.0, 3.0]]
    # What the scheduled cycle takes first is not sent again by the urgent sender.
    push.handle(_req(b"a 4\n"))
    assert [s.value for s in push.take()] == [4.0]
    await asyncio.sleep(0.3)
    assert len(sink.cycles) == 2
    await push.close()


async def test_pushes_during_a_slow_submit_get_the_next_report() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    push = Push(sink.submit, CollectorRegistry(), min_interval_s=0.0, clock=lambda: NOW)
    push.handle(_req(b"a 1\n"))
    await asyncio.sleep(0.01)
    push.handle(_req(b"a 2\n"))  # the first report is still being spooled
    sink.gate.set()
    await asyncio.sleep(0.05)
    assert [[s.value for s in c.samples] for c in sink.cycles] == [[1.0], [2.0]]
    await push.close()


async def test_token_encoding_and_buffer_limits() -> None:
    sink = Sink()
    push = Push(sink.submit, CollectorRegistry(), token="s3cret", max_samples=2)
    status, media, _body, headers = push.handle(_req(b"a 1\n"))
    assert (status, media, headers) == (
        401,
        "application/problem+json",
        {"WWW-Authenticate": "Bearer"},
    )
    assert push.handle(_req(b"a 1\n", authorization="Bearer nope"))[0] == 401
    assert push.handle(_req(b"a 1\n", authorization="Bearer s3cret"))[0] == 202
    gz = _req(b"a 1\n", authorization="Bearer s3cret", **{"content-encoding": "gzip"})
    assert push.handle(gz)[0] == 415
    push.take()
    status, _, _, headers = push.handle(_req(b"a 1\nb 2\nc 3\n", authorization="Bearer s3cret"))
    assert (status, headers) == (429, {"Retry-After": "1"})
    assert push.pending == 0
    await push.close()


async def test_close_spools_what_is_still_buffered() -> None:
    sink = Sink()
    push = Push(sink.submit, CollectorRegistry(), min_interval_s=60.0, clock=lambda: NOW)
    push.handle(_req(b"a 1\n"))
    await asyncio.sleep(0.01)
    push.handle(_req(b"a 2\n"))  # waits a minute for its urgent report
    await push.close()
    assert [[s.value for s in c.samples] for c in sink.cycles] == [[1.0], [2.0]]
    assert push.pending == 0
    status, _, _, headers = push.handle(_req(b"a 3\n"))
    assert (status, headers, push.pending) == (503, {"Retry-After": "1"}, 0)
