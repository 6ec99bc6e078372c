"""What the dashboard tests share: every query of every board (variables filled in), the metric
names each reads, and the metric names the code defines."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from control_plane.rules import parse_expr
from control_plane.rules.ast import MatrixSelector, VectorSelector
from dashboards.queries import (
    PanelQuery,
    defaults,
    instantiate,
    load_boards,
    panel_queries,
    variable_queries,
)

# The repository root (not imported from conftest: another folder's conftest may hold that name).
ROOT = Path(__file__).resolve().parents[2]

# Where metrics are defined: the packages that export them (the demo app is in haetae/).
SOURCES = ("agent", "control_plane", "haetae", "link_analyzer")
_LITERAL = re.compile(r"""["']((?:haetae|demo)_[a-z0-9_]+)["']""")
# What a family name becomes in the exposition: counters gain _total, histograms these three.
_SUFFIXES = ("_total", "_bucket", "_sum", "_count")


@cache
def all_queries() -> list[tuple[PanelQuery, str]]:
    """Each panel target and query variable with its PromQL as Grafana sends it by default."""
    out = []
    for uid, board in load_boards().items():
        values = defaults(board)
        for q in [*panel_queries(uid, board), *variable_queries(uid, board)]:
            out.append((q, instantiate(q.expr, values)))
    return out


def boards() -> dict[str, dict[str, Any]]:
    return load_boards()


def selectors(expr: str) -> Iterator[VectorSelector | MatrixSelector]:
    """Every vector and matrix selector in ``expr``, by a walk over Haetae's parse tree."""
    yield from _walk(parse_expr(expr))


def _walk(node: object) -> Iterator[VectorSelector | MatrixSelector]:
    if isinstance(node, VectorSelector | MatrixSelector):
        yield node
    if isinstance(node, MatrixSelector):
        return
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            for child in value if isinstance(value, tuple) else (value,):
                yield from _walk(child)


def metric_names(expr: str) -> set[str]:
    out = set()
    for sel in selectors(expr):
        vector = sel.selector if isinstance(sel, MatrixSelector) else sel
        # A selector without a metric name matches anything: no board should send one.
        out.add(vector.name or f"<no metric name in {expr!r}>")
    return out


@cache
def defined_metrics(root: Path = ROOT) -> frozenset[str]:
    """Metric names as string literals in the code, with the names their families expose."""
    names: set[str] = set()
    for package in SOURCES:
        for path in (root / package).rglob("*.py"):
            names.update(_LITERAL.findall(path.read_text()))
    derived = {n + s for n in names for s in _SUFFIXES if not n.endswith(s)}
    return frozenset(names | derived)
