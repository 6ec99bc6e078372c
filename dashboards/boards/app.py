"""An app's rate, errors and duration, from the ``http_requests_total`` /
``http_request_duration_seconds`` convention the agent scrapes (haetae/demo_app.py exports them
with the ``demo_`` prefix). The `prefix` variable selects the app: empty for plain names."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, TextBoxVariable

from dashboards.panels import RATE, Query, graph, new_board, row, sel, single

REQUESTS = "${prefix}http_requests_total"
DURATION = "${prefix}http_request_duration_seconds"

A = sel()


def board() -> Dashboard:
    errors = sel('status=~"5.."')
    ok = sel('status!~"5.."')
    rate_all = f"sum(rate({REQUESTS}{A}[{RATE}]))"
    # 1 - ok/all rather than errors/all: a window without any 5xx still gives 0, not no data.
    error_ratio = f"1 - sum(rate({REQUESTS}{ok}[{RATE}])) / {rate_all}"
    return (
        new_board(
            "haetae-app",
            "Haetae / App: rate, errors, duration",
            "Request rate, error ratio and latency of an app the agent scrapes.",
            agents_from=REQUESTS,
            before_agent=[
                TextBoxVariable("prefix")
                .label("Metric prefix")
                .description("Put before http_requests_total; empty for an app without a prefix.")
                .default_value("demo_")
            ],
        )
        .with_row(row("Now"))
        .with_panel(single("Requests / s", Query(rate_all), unit="reqps"))
        .with_panel(single("Error ratio", Query(error_ratio), unit="percentunit"))
        .with_panel(
            single(
                "p95 latency",
                Query(
                    f"histogram_quantile(0.95, sum by (le) (rate({DURATION}_bucket{A}[{RATE}])))"
                ),
                unit="s",
            )
        )
        .with_panel(
            single("Errors / s", Query(f"sum(rate({REQUESTS}{errors}[{RATE}]))"), unit="reqps")
        )
        .with_row(row("Rate and errors"))
        .with_panel(
            graph(
                "Requests by status",
                Query(
                    f"sum by (agent, status) (rate({REQUESTS}{A}[{RATE}]))",
                    "{{agent}} {{status}}",
                ),
                unit="reqps",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Requests by path",
                Query(f"sum by (path) (rate({REQUESTS}{A}[{RATE}]))", "{{path}}"),
                unit="reqps",
            )
        )
        .with_panel(
            graph(
                "Error ratio",
                Query(
                    f"1 - sum by (agent) (rate({REQUESTS}{ok}[{RATE}])) "
                    f"/ sum by (agent) (rate({REQUESTS}{A}[{RATE}]))",
                    "{{agent}}",
                ),
                unit="percentunit",
            )
        )
        .with_row(row("Duration"))
        .with_panel(
            graph(
                "Latency quantiles",
                *(
                    Query(
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate({DURATION}_bucket{A}[{RATE}])))",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ),
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Mean latency by path",
                Query(
                    f"sum by (path) (rate({DURATION}_sum{A}[{RATE}])) "
                    f"/ sum by (path) (rate({DURATION}_count{A}[{RATE}]))",
                    "{{path}}",
                ),
                unit="s",
            )
        )
    )
