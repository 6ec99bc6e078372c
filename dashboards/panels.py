"""The few shapes every board is made of: a Prometheus data source chosen by a variable, an
``agent`` variable, and time-series / stat panels whose targets get their refIds here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import StackingConfig, VizLegendOptions
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

# Every panel and variable queries the data source picked in the board's `datasource` variable,
# so one board serves Haetae's Prometheus API and a Prometheus alike.
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Grafana's rate window: max(4 x the data source's scrape interval, step + scrape interval).
RATE = "$__rate_interval"
AGENT = 'agent=~"$agent"'


def sel(*matchers: str) -> str:
    """A selector's braces: the `agent` variable's matcher, then ``matchers``."""
    return "{" + ",".join((AGENT, *matchers)) + "}"


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str = ""


def new_board(
    uid: str,
    title: str,
    description: str,
    *,
    agents_from: str,
    before_agent: Sequence[Builder[model.VariableModel]] = (),
) -> dashboard.Dashboard:
    """A board with the `datasource` and `agent` variables (agents listed from ``agents_from``,
    a series every agent of the board has); ``before_agent`` are variables ``agents_from``
    refers to, so they come first."""
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["haetae"])
        .editable()
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for variable in before_agent:
        board = board.with_variable(variable)
    return board.with_variable(agent_variable(agents_from))


def agent_variable(metric: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable("agent")
        .label("Agent")
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, agent)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def _targets(queries: tuple[Query, ...], *, instant: bool) -> list[Builder[Dataquery]]:
    out: list[Builder[Dataquery]] = []
    for i, q in enumerate(queries):
        target = (
            prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).datasource(DATASOURCE)
        )
        if q.legend:
            target = target.legend_format(q.legend)
        out.append(target.instant() if instant else target.range())
    return out


def graph(
    title: str, *queries: Query, unit: str = "short", description: str = "", stack: bool = False
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries, instant=False))
        .unit(unit)
        .fill_opacity(10)
        .legend(
            VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    if stack:
        panel = panel.stacking(StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def single(title: str, query: Query, *, unit: str = "short", description: str = "") -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets((query,), instant=True))
        .unit(unit)
        .height(5)
        .span(6)
        .graph_mode(common.BigValueGraphMode.AREA)
    )


def row(title: str) -> dashboard.Row:
    return dashboard.Row(title)
