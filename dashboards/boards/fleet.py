"""The fleet: every agent's host (agent/collectors/host.py), the process it watches
(agent/collectors/process.py) and the app probes (agent/collectors/app.py, health.py)."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import AGENT, RATE, Query, graph, new_board, row, single


def board() -> Dashboard:
    a = "{" + AGENT + "}"
    return (
        _hosts(
            _overview(
                new_board(
                    "haetae-fleet",
                    "Haetae / Fleet",
                    "Hosts and the processes the agents watch, from the agents' host and process "
                    "collectors.",
                    agents_from="haetae_host_boot_time_seconds",
                )
            )
        )
        .with_row(row("Processes"))
        .with_panel(graph("Process up", Query(f"haetae_process_up{a}", "{{agent}}")))
        .with_panel(
            graph(
                "Process restarts",
                Query(f"increase(haetae_process_restarts_total{a}[{RATE}])", "{{agent}}"),
                description="Restarts the agent saw (a new pid or start time for the match).",
            )
        )
        .with_panel(
            graph(
                "Process CPU",
                Query(
                    f"sum by (agent, mode) (rate(haetae_process_cpu_seconds_total{a}[{RATE}]))",
                    "{{agent}} {{mode}}",
                ),
                unit="percentunit",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Process memory",
                Query(f"haetae_process_resident_memory_bytes{a}", "{{agent}} resident"),
                Query(f"haetae_process_virtual_memory_bytes{a}", "{{agent}} virtual"),
                unit="bytes",
            )
        )
        .with_panel(
            graph(
                "Threads and open files",
                Query(f"haetae_process_threads{a}", "{{agent}} threads"),
                Query(f"haetae_process_open_fds{a}", "{{agent}} open fds"),
            )
        )
        .with_panel(
            graph(
                "Context switches",
                Query(
                    "sum by (agent, kind) "
                    f"(rate(haetae_process_context_switches_total{a}[{RATE}]))",
                    "{{agent}} {{kind}}",
                ),
                unit="ops",
            )
        )
        .with_row(row("App probes"))
        .with_panel(
            graph(
                "Health probe",
                Query(f"haetae_app_health_up{a}", "{{agent}} up"),
                Query(f"haetae_app_scrape_up{a}", "{{agent}} scrape up"),
            )
        )
        .with_panel(
            graph(
                "Probe latency",
                Query(f"haetae_app_health_latency_seconds{a}", "{{agent}} health"),
                Query(f"haetae_app_scrape_duration_seconds{a}", "{{agent}} scrape"),
                unit="s",
            )
        )
    )


def _overview(d: Dashboard) -> Dashboard:
    a = "{" + AGENT + "}"
    return (
        d.with_row(row("Overview"))
        .with_panel(single("Hosts", Query(f"count(haetae_host_boot_time_seconds{a})")))
        .with_panel(
            single("Processes up", Query(f"sum(haetae_process_up{a})"), description="Watched.")
        )
        .with_panel(
            single("Busiest CPU", Query(f"max(haetae_host_cpu_usage_ratio{a})"), unit="percentunit")
        )
        .with_panel(
            single(
                "Fullest filesystem",
                Query(f"max(haetae_host_filesystem_used_ratio{a})"),
                unit="percentunit",
            )
        )
    )


def _hosts(d: Dashboard) -> Dashboard:
    a = "{" + AGENT + "}"
    return (
        d.with_row(row("Hosts"))
        .with_panel(
            graph(
                "CPU usage",
                Query(f"haetae_host_cpu_usage_ratio{a}", "{{agent}}"),
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "CPU by mode",
                Query(
                    f"avg by (agent, mode) (haetae_host_cpu_mode_ratio{a})", "{{agent}} {{mode}}"
                ),
                unit="percentunit",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Load per CPU",
                Query(f"haetae_host_load1{a} / haetae_host_cpu_count{a}", "{{agent}} 1m"),
                Query(f"haetae_host_load5{a} / haetae_host_cpu_count{a}", "{{agent}} 5m"),
                Query(f"haetae_host_load15{a} / haetae_host_cpu_count{a}", "{{agent}} 15m"),
            )
        )
        .with_panel(
            graph(
                "Memory",
                Query(
                    f"haetae_host_memory_total_bytes{a} - haetae_host_memory_available_bytes{a}",
                    "{{agent}} used",
                ),
                Query(f"haetae_host_swap_used_bytes{a}", "{{agent}} swap used"),
                unit="bytes",
            )
        )
        .with_panel(
            graph(
                "Filesystem used",
                Query(f"haetae_host_filesystem_used_ratio{a}", "{{agent}} {{mountpoint}}"),
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "Disk throughput",
                Query(
                    f"sum by (agent) (rate(haetae_host_disk_read_bytes_total{a}[{RATE}]))",
                    "{{agent}} read",
                ),
                Query(
                    f"sum by (agent) (rate(haetae_host_disk_written_bytes_total{a}[{RATE}]))",
                    "{{agent}} written",
                ),
                unit="Bps",
            )
        )
        .with_panel(
            graph(
                "Disk busy",
                Query(
                    f"rate(haetae_host_disk_io_time_seconds_total{a}[{RATE}])",
                    "{{agent}} {{device}}",
                ),
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "Network",
                Query(
                    f"sum by (agent) (rate(haetae_host_network_receive_bytes_total{a}[{RATE}]))",
                    "{{agent}} in",
                ),
                Query(
                    f"sum by (agent) (rate(haetae_host_network_transmit_bytes_total{a}[{RATE}]))",
                    "{{agent}} out",
                ),
                unit="Bps",
            )
        )
        .with_panel(
            graph(
                "Network errors and drops",
                Query(
                    "sum by (agent) "
                    f"(rate(haetae_host_network_receive_errors_total{a}[{RATE}]) "
                    f"+ rate(haetae_host_network_transmit_errors_total{a}[{RATE}]))",
                    "{{agent}} errors",
                ),
                Query(
                    "sum by (agent) "
                    f"(rate(haetae_host_network_receive_drop_total{a}[{RATE}]) "
                    f"+ rate(haetae_host_network_transmit_drop_total{a}[{RATE}]))",
                    "{{agent}} drops",
                ),
                unit="pps",
            )
        )
    )
