"""Alerting, from the control plane's /metrics (control_plane/rules/metrics.py,
control_plane/alerting/wakeups.py): alerts by state, notifications by outcome, rule evaluation,
and the LISTEN connection that wakes the dispatcher."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import AGENT, RATE, Query, graph, new_board, row, sel, single

A = sel()


def board() -> Dashboard:
    failed = sel('outcome="failed"')
    return (
        new_board(
            "haetae-alerting",
            "Haetae / Alerting",
            "Firing alerts, notifications sent and failed, rule evaluation of the control plane "
            "replicas.",
            agents_from="haetae_notifications_total",
        )
        .with_row(row("Now"))
        .with_panel(single("Firing alerts", Query(f'sum(haetae_alerts{{{AGENT},state="firing"}})')))
        .with_panel(
            single("Pending alerts", Query(f'sum(haetae_alerts{{{AGENT},state="pending"}})'))
        )
        .with_panel(
            single(
                "Notifications failed (1 h)",
                Query(f"sum(increase(haetae_notifications_total{failed}[1h]))"),
            )
        )
        .with_panel(single("Evaluation shards held", Query(f"sum(haetae_rule_shards_held{A})")))
        .with_row(row("Alerts and notifications"))
        .with_panel(
            graph(
                "Alerts by state",
                Query(f"sum by (state) (haetae_alerts{A})", "{{state}}"),
            )
        )
        .with_panel(
            graph(
                "Notifications by outcome",
                Query(
                    f"sum by (outcome) (rate(haetae_notifications_total{A}[{RATE}]))",
                    "{{outcome}}",
                ),
                unit="ops",
                description="sent, retry, rate_limited, fell_back (to the next channel), failed.",
            )
        )
        .with_row(row("Rule evaluation and dispatch"))
        .with_panel(
            graph(
                "Evaluation pass duration (p50, p99)",
                *(
                    Query(
                        f"histogram_quantile({q}, sum by (agent, le) "
                        f"(rate(haetae_rule_evaluation_duration_seconds_bucket{A}[{RATE}])))",
                        f"{{{{agent}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ),
                unit="s",
            )
        )
        .with_panel(
            graph(
                "Dispatcher wake-ups",
                Query(
                    f"sum by (agent) (rate(haetae_notify_wakeups_total{A}[{RATE}]))",
                    "{{agent}} wake-ups",
                ),
                Query(
                    f"sum by (agent) (increase(haetae_notify_listener_reconnects_total{A}[1h]))",
                    "{{agent}} listener reconnects (1 h)",
                ),
            )
        )
        .with_panel(
            graph(
                "Listener connected",
                Query(f"haetae_notify_listener_connected{A}", "{{agent}}"),
            )
        )
    )
