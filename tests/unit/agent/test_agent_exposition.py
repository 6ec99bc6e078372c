"""The fast exposition parser agrees with prometheus_client's on real exposition output."""

from __future__ import annotations

import math

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)

from agent.collectors.base import Sample
from agent.collectors.exposition import ExpositionParser, parse_reference

NOW = 1_700_000_100.0


def _exposition() -> str:
    r = CollectorRegistry()
    c = Counter("app_requests_total", "Requests.", ["path", "method"], registry=r)
    c.labels("/", "GET").inc(3)
    c.labels('/quote"d\\back\nline', "POST").inc()
    c.labels("/ünïcode {braces} = ,", "GET").inc(2)
    Gauge("app_temperature", "Temp.", registry=r).set(-12.5)
    Gauge("app_nan", "NaN.", registry=r).set(math.nan)
    Gauge("app_inf", "Inf.", registry=r).set(math.inf)
    h = Histogram("app_latency_seconds", "Latency.", ["route"], registry=r)
    for v in (0.003, 0.2, 4.0, 100.0):
        h.labels("/a").observe(v)
    Summary("app_payload_bytes", "Sizes.", registry=r).observe(512)
    return generate_latest(r).decode()


def _key(s: Sample) -> tuple[str, tuple[tuple[str, str], ...], str, float | None]:
    return s.name, tuple(sorted(s.labels.items())), repr(s.value), s.ts


def test_matches_reference_parser() -> None:
    text = _exposition()
    fast = ExpositionParser().parse(text, now=NOW)
    assert sorted(map(_key, fast)) == sorted(map(_key, parse_reference(text)[0]))
    buckets = [s for s in fast if s.name == "app_latency_seconds_bucket"]
    assert {s.labels["le"] for s in buckets} >= {"0.005", "+Inf"}
    assert [s.value for s in buckets if s.labels["le"] == "+Inf"] == [4.0]
    quoted = [s for s in fast if s.labels.get("method") == "POST"]
    assert quoted[0].labels["path"] == '/quote"d\\back\nline'


def test_cached_series_stay_correct_across_scrapes() -> None:
    parser = ExpositionParser()
    first = parser.parse('a{x="1"} 1\nb 2\n', now=NOW)
    second = parser.parse('a{x="1"} 5\nc{y="z"} 3 1700000000000\n', now=NOW)
    assert [(s.name, s.labels, s.value, s.ts) for s in first] == [
        ("a", {"x": "1"}, 1.0, None),
        ("b", {}, 2.0, None),
    ]
    assert [(s.name, s.labels, s.value, s.ts) for s in second] == [
        ("a", {"x": "1"}, 5.0, None),
        ("c", {"y": "z"}, 3.0, 1700000000.0),
    ]
    assert set(parser._series) == {'a{x="1"}', 'c{y="z"}'}  # b was forgotten


@pytest.mark.parametrize(
    "text",
    [
        'a{x="1"} 1\nb 2\n',
        'a{x="1"} 1 1700000000000\n',  # a timestamp after a series seen without one
        'a{x="1"}\t1\n',
        'a{x="1"} 1\r\n',
        '  a{x="1"}  1  \n',
        'a{x="1"} +Inf\na{x="2"} NaN\n',
        'a{x="} 1"} 3\n',
        "b 2 1700000000000\n",
        '{"http.requests"} 1\n',
    ],
)
def test_second_scrape_fast_path_agrees_with_the_first(text: str) -> None:
    # The second parse of a text finds its series cached (the one-space fast path); the
    # answer must be the one a fresh parser gives.
    warm = ExpositionParser()
    warm.parse('a{x="1"} 0\na{x="2"} 0\nb 0\n{"http.requests"} 0\na{x="} 1"} 0\n', now=NOW)
    warm.parse(text, now=NOW)
    again = warm.parse(text, now=NOW)
    fresh = ExpositionParser()
    expected = fresh.parse(text, now=NOW)

    def key(samples: list[Sample]) -> list[tuple[object, ...]]:
        return [(s.name, s.labels, repr(s.value), s.ts) for s in samples]

    assert key(again) == key(expected)
    assert warm.refused == fresh.refused


def test_keeps_names_as_exposed() -> None:
    # The reference parser would rename a counter lacking _total; the exposed name is kept.
    samples = ExpositionParser().parse("# TYPE jobs counter\njobs 3\n", now=NOW)
    assert [(s.name, s.value) for s in samples] == [("jobs", 3.0)]


def test_whitespace_and_crlf() -> None:
    samples = ExpositionParser().parse('m { a = "1" , } 2\r\n  n\t7  \r\n', now=NOW)
    got = [(s.name, s.labels, s.value) for s in samples]
    assert got == [("m", {"a": "1"}, 2.0), ("n", {}, 7.0)]


def test_odd_lines_fall_back_and_drop_names_the_wire_refuses() -> None:
    parser = ExpositionParser()
    samples = parser.parse('{"http.requests"} 1\nok_metric 2\n', now=NOW)
    assert [(s.name, s.value) for s in samples] == [("ok_metric", 2.0)]
    assert parser.refused == 1


@pytest.mark.parametrize(
    "text",
    ['m{a="1" 2\n', "m 1_000\n", "m{a=1} 2\n", "m not-a-number\n", 'm{a="1",a="2"} 1\n'],
)
def test_invalid_text_raises(text: str) -> None:
    with pytest.raises(ValueError):
        ExpositionParser().parse(text, now=NOW)


def test_samples_the_control_plane_would_refuse_are_left_out_and_counted() -> None:
    parser = ExpositionParser()
    long_value = "v" * 5000
    many = ",".join(f'l{i}="x"' for i in range(65))
    text = (
        f'ok{{a="1"}} 1\n'
        f'too_long{{a="{long_value}"}} 2\n'
        f"too_many{{{many}}} 3\n"
        f"{'n' * 300} 4\n"
        "future 5 1800000000000\n"  # far ahead of NOW
        "zero_time 6 0\n"
        "fine_time 7 1700000000000\n"
    )
    for _ in range(2):  # refusals are cached like accepted series
        samples = parser.parse(text, now=NOW)
        assert [s.name for s in samples] == ["ok", "fine_time"]
        assert parser.refused == 5
