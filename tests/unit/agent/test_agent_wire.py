"""The agent refuses exactly what the control plane's decode would (one set of limits)."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest

from agent import wire
from agent.collectors.exposition import ExpositionParser
from control_plane.config import IngestConfig
from control_plane.ingest.decode import decode_report
from haetae.web import validation
from haetae.web.problem import ProblemError


def test_the_limits_are_the_validation_seams() -> None:
    assert wire.MAX_METRIC_NAME == validation.MAX_METRIC_NAME
    assert wire.MAX_LABELS == validation.MAX_LABELS
    assert wire.MAX_LABEL_NAME == validation.MAX_LABEL_NAME
    assert wire.MAX_LABEL_VALUE == validation.MAX_LABEL_VALUE
    assert wire.MAX_LABEL_SET_BYTES == validation.MAX_LABEL_SET_BYTES


CASES = [
    ("ok", {"a": "b"}),
    ("1bad", {}),
    ("n" * 256, {}),
    ("n" * 257, {}),
    ("ok", {"bad-name": "x"}),
    ("ok", {"a": "x\x00y"}),
    ("ok", {"a": "v" * 1024}),
    ("ok", {"a": "v" * 1025}),
    ("ok", {f"l{i}": "" for i in range(64)}),
    ("ok", {f"l{i}": "" for i in range(65)}),
    ("ok", {"a": "v" * 1000, "b": "v" * 1000}),  # 2,017 bytes stored: fits
    ("ok", {"a": "v" * 1000, "b": "v" * 1000, "c": "v" * 100}),  # 2,125: does not
    ("ok", {"a": "\u00e9" * 1000}),  # 1,000 characters, 2,000 bytes
    ("ok", {"a": "\u00e9" * 1020}),  # 2,040 bytes + the JSON around it
    ("ok", {"a": "\x01" * 400}),  # escaped as \u0001: 2,400 bytes stored
]


@pytest.mark.parametrize(("name", "labels"), CASES)
def test_agent_and_control_plane_agree(name: str, labels: dict[str, str]) -> None:
    doc = {
        "report_id": str(uuid.uuid4()),
        "collected_at": time.time(),
        "samples": [{"name": name, "labels": labels, "value": 1}],
    }
    try:
        decode_report(orjson.dumps(doc), "a", now=time.time(), cfg=IngestConfig())
        accepted = True
    except ProblemError as exc:
        assert exc.status == 400 and exc.field and exc.field.startswith("samples[0]")
        accepted = False
    assert (wire.series_problem(name, labels) is None) == accepted


def test_a_lone_surrogate_is_refused() -> None:
    assert wire.series_problem("ok", {"a": "\udc80"}) == ("labels", "not valid UTF-8")


def test_the_scrape_leaves_out_what_would_be_refused() -> None:
    parser = ExpositionParser()
    text = 'ok{a="x"} 1\nok{a="' + "v" * 1025 + '"} 2\nok{a="x\x00y"} 3\n'
    samples = parser.parse(text, now=time.time())
    assert [s.value for s in samples] == [1.0] and parser.refused == 2
