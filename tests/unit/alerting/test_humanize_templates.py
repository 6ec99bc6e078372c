"""Prometheus' template functions print what Prometheus prints (the expectations are from
prometheus/template/template_test.go and the alerting docs), in both template forms."""

from __future__ import annotations

import math

import pytest

from control_plane.rules.templates import (
    TemplateError,
    check_template,
    humanize,
    humanize1024,
    humanize_duration,
    humanize_percentage,
    humanize_timestamp,
    render,
)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (0, "0"),
        (1234567, "1.235M"),
        (1000, "1k"),
        (999, "999"),
        (0.12345, "123.5m"),
        (0.0001, "100u"),
        (-1234567, "-1.235M"),
        (1e30, "1e+06Y"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_humanize(value: float, want: str) -> None:
    assert humanize(value) == want


@pytest.mark.parametrize(
    ("value", "want"),
    [(0, "0"), (1, "1"), (1023, "1023"), (1024, "1ki"), (1048576, "1Mi"), (1.5 * 2**30, "1.5Gi")],
)
def test_humanize1024(value: float, want: str) -> None:
    assert humanize1024(value) == want


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (2.7795454545454534, "2.78s"),
        (0, "0s"),
        (1, "1s"),
        (0.1, "100ms"),
        (0.0001, "100us"),
        (60, "1m 0s"),
        (3600, "1h 0m 0s"),
        (86400, "1d 0h 0m 0s"),
        (90061, "1d 1h 1m 1s"),
        (-90061, "-1d 1h 1m 1s"),
        (1.2345, "1.234s"),
        (math.nan, "NaN"),
    ],
)
def test_humanize_duration(value: float, want: str) -> None:
    assert humanize_duration(value) == want


def test_humanize_percentage_and_timestamp() -> None:
    assert humanize_percentage(0.1234567) == "12.35%"
    assert humanize_percentage(0.5) == "50%"
    assert humanize_timestamp(1435065584.128) == "2015-06-23 13:19:44.128 +0000 UTC"
    assert humanize_timestamp(0) == "1970-01-01 00:00:00 +0000 UTC"
    assert humanize_timestamp(math.inf) == "+Inf"


def test_pipes_and_calls_render_alike() -> None:
    labels = {"agent": "web-1"}
    for text in ("{{ $value | humanizeDuration }}", "{{humanizeDuration $value}}"):
        check_template(text)
        assert render(text, labels, 2.7795454545454534) == "2.78s"
    assert render("{{ $labels.agent }}: {{ $value }}", labels, 3.0) == "web-1: 3"
    assert render("{{ $value | humanize1024 }}B", labels, 2048) == "2kiB"


def test_unsupported_templates_are_refused_at_load() -> None:
    with pytest.raises(TemplateError, match="humanizeTimestamp"):
        check_template("{{ $value | printf }}")
    with pytest.raises(TemplateError):
        check_template("{{ humanize $labels.agent }}")
