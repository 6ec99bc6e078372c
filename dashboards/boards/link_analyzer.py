"""The link analyzer (link_analyzer/metrics.py): queue depth, analysis latency, Gemini calls and
spend per day, and how many answers came from cache."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import AGENT, RATE, Query, graph, new_board, row, sel, single

A = sel()


def board() -> Dashboard:
    cached = sel('result=~"cached|reused"')
    return (
        new_board(
            "haetae-link-analyzer",
            "Haetae / Link analyzer",
            "The analysis API (on the control plane) and the queue workers.",
            agents_from="haetae_link_analyses_total",
        )
        .with_row(row("Today"))
        .with_panel(
            single(
                "Gemini spend (24 h)",
                Query(f"sum(increase(haetae_link_gemini_cost_usd_total{A}[1d]))"),
                unit="currencyUSD",
            )
        )
        .with_panel(
            single(
                "Gemini calls (24 h)",
                Query(f"sum(increase(haetae_link_gemini_calls_total{A}[1d]))"),
            )
        )
        .with_panel(
            single(
                "Answered from cache",
                Query(
                    f"sum(rate(haetae_link_analyses_total{cached}[{RATE}])) "
                    f"/ sum(rate(haetae_link_analyses_total{A}[{RATE}]))"
                ),
                unit="percentunit",
                description="cached: metadata and analysis from cache; reused: refetched, "
                "analysis reused by content hash.",
            )
        )
        .with_panel(
            single("Queued jobs", Query(f'sum(haetae_link_queue_depth{{{AGENT},state="queued"}})'))
        )
        .with_row(row("Queue"))
        .with_panel(
            graph(
                "Queue depth by state",
                Query(f"max by (state) (haetae_link_queue_depth{A})", "{{state}}"),
            )
        )
        .with_panel(
            graph(
                "Jobs by outcome",
                Query(f"sum by (outcome) (rate(haetae_link_jobs_total{A}[{RATE}]))", "{{outcome}}"),
                unit="ops",
            )
        )
        .with_row(row("Analyses"))
        .with_panel(
            graph(
                "Analysis latency (p50, p95)",
                *(
                    Query(
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate(haetae_link_analysis_duration_seconds_bucket{A}[{RATE}])))",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95)
                ),
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Analyses by result",
                Query(
                    f"sum by (result) (rate(haetae_link_analyses_total{A}[{RATE}]))", "{{result}}"
                ),
                unit="ops",
                stack=True,
            )
        )
        .with_row(row("Gemini"))
        .with_panel(
            graph(
                "Gemini calls per day by mode and result",
                Query(
                    f"sum by (mode, result) (increase(haetae_link_gemini_calls_total{A}[1d]))",
                    "{{mode}} {{result}}",
                ),
            )
        )
        .with_panel(
            graph(
                "Gemini spend per day by mode",
                Query(
                    f"sum by (mode) (increase(haetae_link_gemini_cost_usd_total{A}[1d]))",
                    "{{mode}}",
                ),
                unit="currencyUSD",
            )
        )
    )
