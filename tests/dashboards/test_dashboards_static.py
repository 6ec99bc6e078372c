"""The boards as files: built from the code, every query parses (Haetae's parser and promtool),
reads only metrics the code defines, and rates over windows long enough for the scrape interval;
the JSON is Grafana's dashboard model (grafana-foundation-sdk round trip)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from board_checks import ROOT, all_queries, boards, defined_metrics, metric_names, selectors
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from agent.config import AgentConfig
from control_plane.rules.ast import MatrixSelector
from control_plane.rules.durations import parse_duration
from dashboards import build
from dashboards.queries import GRAFANA_DEFAULTS, PanelQuery, defaults, instantiate

PROMTOOL = shutil.which("promtool")
AGENT_INTERVAL_S = AgentConfig.model_fields["interval_s"].default
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/haetae.yaml"


def test_json_is_what_the_code_builds() -> None:
    assert build.main(["--check"]) == 0, "run: python -m dashboards.build"


def test_every_board_has_queries() -> None:
    per_board = {q.board for q, _ in all_queries()}
    assert per_board == set(build.BOARDS)
    assert len(all_queries()) >= 60


def test_every_query_parses_with_haetae() -> None:
    for q, expr in all_queries():
        assert list(selectors(expr)), q


def _promtool_check(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess[str]:
    rules = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "boards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian: prometheus) missing")
def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    exprs = [expr for _, expr in all_queries()]
    proc = _promtool_check(tmp_path, exprs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(exprs)} rules found" in proc.stdout
    # The check can fail: a broken query is refused.
    broken = _promtool_check(tmp_path, ["sum(rate(haetae_cache_requests_total[1m])"])
    assert broken.returncode != 0


def _undefined_metrics(queries: list[tuple[PanelQuery, str]]) -> list[str]:
    known = defined_metrics()
    return sorted(f"{q}: {name}" for q, expr in queries for name in metric_names(expr) - known)


def test_every_metric_is_defined_in_the_code() -> None:
    missing = _undefined_metrics(all_queries())
    assert not missing, "\n".join(missing)
    # A typo fails.
    typo = PanelQuery("b", "p", "A", "haetae_host_load_1")
    assert _undefined_metrics([(typo, typo.expr)]) == [f"{typo}: haetae_host_load_1"]


# A window no board has: what $__rate_interval stands for while the windows are checked.
_RATE_SENTINEL = "7777s"


def _short_windows(queries: list[tuple[PanelQuery, dict[str, str]]], minimum: float) -> list[str]:
    """Range selectors shorter than ``minimum`` other than $__rate_interval's."""
    rate_interval_s = parse_duration(_RATE_SENTINEL)
    too_short = []
    for q, values in queries:
        expr = instantiate(q.expr, values | {"__rate_interval": _RATE_SENTINEL})
        for sel in selectors(expr):
            if not isinstance(sel, MatrixSelector) or sel.range_s == rate_interval_s:
                continue
            if sel.range_s < minimum:
                too_short.append(f"{q}: {sel.range_s:g}s < {minimum:g}s")
    return too_short


def test_rate_windows_span_two_scrapes() -> None:
    """Fixed windows are at least two agent intervals; the rest are Grafana's
    $__rate_interval, which the provisioned data sources make at least four."""
    minimum = 2 * AGENT_INTERVAL_S
    queries = [(q, defaults(boards()[q.board])) for q, _ in all_queries()]
    too_short = _short_windows(queries, minimum)
    assert not too_short, "\n".join(too_short)
    assert "$__rate_interval" in json.dumps(boards())
    # The check can fail: a 10 s window, and a subquery's inner one.
    for bad in ("rate(x[10s])", "max_over_time(rate(x[5s])[5m:1m])"):
        assert _short_windows([(PanelQuery("b", "p", "A", bad), {})], minimum), bad
    assert not _short_windows([(PanelQuery("b", "p", "A", "rate(x[$__rate_interval])"), {})], 20)
    # $__rate_interval >= 4 x timeInterval; timeInterval >= the agent's interval.
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    for ds in provisioned:
        assert parse_duration(ds["jsonData"]["timeInterval"]) >= AGENT_INTERVAL_S, ds["name"]
    assert parse_duration(GRAFANA_DEFAULTS["__rate_interval"]) >= minimum


def _round_trip(doc: dict[str, object]) -> object:
    plugins.register_default_plugins()
    model = Dashboard.from_json(doc)
    return _drop_empty(json.loads(JSONEncoder().encode(model)))


def _drop_empty(value: object) -> object:
    # The SDK writes an empty `custom: {}` it was not given; nothing else may differ.
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v != {} or k != "custom"}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def test_json_round_trips_through_the_sdk_model() -> None:
    for uid, doc in boards().items():
        assert _round_trip(doc) == _drop_empty(doc), uid


def _graph(doc: dict[str, Any]) -> dict[str, Any]:
    graph: dict[str, Any] = next(p for p in doc["panels"] if p["type"] == "timeseries")
    return graph


@pytest.mark.parametrize(
    "misspell",
    [
        lambda d: d["panels"][1].update(pannel_typo=1),
        lambda d: _graph(d)["options"]["legend"].update(displayMod="table"),
        lambda d: _graph(d)["fieldConfig"]["defaults"]["custom"].update(fillOpacty=3),
        lambda d: _graph(d)["targets"][0].update(legendFormt="x"),
        lambda d: d["templating"]["list"][1].update(qury="x"),
    ],
    ids=["panel", "options", "field-config", "target", "variable"],
)
def test_round_trip_loses_a_key_grafana_does_not_have(misspell: Callable[[Any], None]) -> None:
    doc = boards()["haetae-app"]
    misspell(doc)
    assert _round_trip(doc) != _drop_empty(doc)


def test_board_structure() -> None:
    uids = set()
    for uid, doc in boards().items():
        assert doc["uid"] == uid and uid not in uids
        uids.add(uid)
        assert doc["title"].startswith("Haetae / ") and "haetae" in doc["tags"]
        assert doc["schemaVersion"] >= 39
        variables = {v["name"]: v for v in doc["templating"]["list"]}
        # A variable's query may only use variables defined before it (Grafana's order).
        for i, var in enumerate(doc["templating"]["list"]):
            earlier = {v["name"]: "x" for v in doc["templating"]["list"][:i]}
            instantiate(str(var.get("query", "")), earlier)
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["agent"]["includeAll"] and variables["agent"]["allValue"] == ".*"
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids)), uid
        cells = [
            (p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy)
            for p in doc["panels"]
            for dx in range(p["gridPos"]["w"])
            for dy in range(p["gridPos"]["h"])
        ]
        assert len(cells) == len(set(cells)), f"{uid}: panels overlap"
        for panel in doc["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (uid, panel["title"])
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "${datasource}"
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)) and all(refs), (uid, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                # Every panel follows the agent selection.
                assert '"$agent"' in target["expr"], (uid, panel["title"])


def test_provisioning() -> None:
    datasources = {d["uid"]: d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    haetae = datasources["haetae"]
    assert haetae["type"] == "prometheus" and haetae["isDefault"]
    assert haetae["jsonData"]["httpHeaderName1"] == "Authorization"
    assert haetae["secureJsonData"]["httpHeaderValue1"].startswith("Bearer $")
    assert datasources["prometheus"]["type"] == "prometheus"
    for ds in datasources.values():
        # From 2.24 on, Grafana fills label_values() from the label values API with match[].
        version = tuple(int(n) for n in ds["jsonData"]["prometheusVersion"].split("."))
        assert version >= (2, 24, 0), ds["name"]
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/haetae.yaml").read_text()
    )["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"]
