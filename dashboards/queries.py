"""The PromQL each board sends, read back from its JSON, and that PromQL with the template
variables filled in the way Grafana fills them (for the tests and for anyone checking a board
against a data source by hand)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboards.build import JSON_DIR

# Grafana's own variables as a query would see them over a 1 h range.
GRAFANA_DEFAULTS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True, slots=True)
class PanelQuery:
    board: str
    panel: str
    ref_id: str
    expr: str
    # Grafana asks /api/v1/query for an instant target, /api/v1/query_range otherwise.
    instant: bool = False

    def __str__(self) -> str:
        return f"{self.board} / {self.panel} / {self.ref_id}: {self.expr}"


def load_boards(json_dir: Path = JSON_DIR) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(json_dir.glob("*.json"))}


def panel_queries(uid: str, board: Mapping[str, Any]) -> Iterator[PanelQuery]:
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            title, ref_id = panel.get("title", ""), target.get("refId", "")
            instant = bool(target.get("instant")) and not target.get("range")
            yield PanelQuery(uid, title, ref_id, target["expr"], instant)


def variable_queries(uid: str, board: Mapping[str, Any]) -> Iterator[PanelQuery]:
    """The selector inside each ``label_values(<selector>, label)`` query variable."""
    for var in board.get("templating", {}).get("list", []):
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", str(var.get("query", "")))
        if var.get("type") == "query" and m:
            yield PanelQuery(uid, f"${var['name']}", "var", m[1], instant=True)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # inside collapsed rows


def defaults(board: Mapping[str, Any]) -> dict[str, str]:
    """Each variable at the value a fresh board starts with: `All` (its allValue) for a
    multi-value query variable, a text box's default."""
    out = dict(GRAFANA_DEFAULTS)
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            out[var["name"]] = var.get("allValue") or ".*"
        elif var.get("type") == "textbox":
            out[var["name"]] = str(var.get("query", ""))
    return out


def instantiate(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with ``$name`` and ``${name}`` replaced; an unknown variable is an error."""

    def fill(m: re.Match[str]) -> str:
        name = m[1] or m[2]
        if name not in values:
            raise KeyError(f"variable ${name} is not defined on the board")
        return values[name]

    return _VARIABLE.sub(fill, expr)
