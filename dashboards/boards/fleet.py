"""The fleet: every agent's host (agent/collectors/host.py), the process it watches
(agent/collectors/process.py) and the app probes (agent/collectors/app.py, health.py)."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import RATE, Query, graph, new_board, row, sel, single

A = sel()


def board() -> Dashboard:
    d = new_board(
        "haetae-fleet",
        "Haetae / Fleet",
        "Hosts and the processes the agents watch, from the agents' host and process collectors.",
        agents_from="haetae_host_boot_time_seconds",
    )
    for section in (_overview, _hosts, _processes, _probes):
        d = section(d)
    return d


def _processes(d: Dashboard) -> Dashboard:
    return (
        d.with_row(row("Processes"))
        .with_panel(graph("Process up", Query(f"haetae_process_up{A}", "{{agent}}")))
        .with_panel(
            graph(
                "Process restarts",
                Query(f"increase(haetae_process_restarts_total{A}[{RATE}])", "{{agent}}"),
                description="Restarts the agent saw (a new pid or start time for the match).",
            )
        )
        .with_panel(
            graph(
                "Process CPU",
                Query(
                    f"sum by (agent, mode) (rate(haetae_process_cpu_seconds_total{A}[{RATE}]))",
                    "{{agent}} {{mode}}",
                ),
                unit="percentunit",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Process memory",
                Query(f"haetae_process_resident_memory_bytes{A}", "{{agent}} resident"),
                Query(f"haetae_process_virtual_memory_bytes{A}", "{{agent}} virtual"),
                unit="bytes",
            )
        )
        .with_panel(
            graph(
                "Threads and open files",
                Query(f"haetae_process_threads{A}", "{{agent}} threads"),
                Query(f"haetae_process_open_fds{A}", "{{agent}} open fds"),
            )
        )
        .with_panel(
            graph(
                "Context switches",
                Query(
                    "sum by (agent, kind) "
                    f"(rate(haetae_process_context_switches_total{A}[{RATE}]))",
                    "{{agent}} {{kind}}",
                ),
                unit="ops",
            )
        )
    )


def _probes(d: Dashboard) -> Dashboard:
    return (
        d.with_row(row("App probes"))
        .with_panel(
            graph(
                "Health probe",
                Query(f"haetae_app_health_up{A}", "{{agent}} up"),
                Query(f"haetae_app_scrape_up{A}", "{{agent}} scrape up"),
            )
        )
        .with_panel(
            graph(
                "Probe latency",
                Query(f"haetae_app_health_latency_seconds{A}", "{{agent}} health"),
                Query(f"haetae_app_scrape_duration_seconds{A}", "{{agent}} scrape"),
                unit="s",
            )
        )
    )


def _overview(d: Dashboard) -> Dashboard:
    return (
        d.with_row(row("Overview"))
        .with_panel(single("Hosts", Query(f"count(haetae_host_boot_time_seconds{A})")))
        .with_panel(
            single("Processes up", Query(f"sum(haetae_process_up{A})"), description="Watched.")
        )
        .with_panel(
            single("Busiest CPU", Query(f"max(haetae_host_cpu_usage_ratio{A})"), unit="percentunit")
        )
        .with_panel(
            single(
                "Fullest filesystem",
                Query(f"max(haetae_host_filesystem_used_ratio{A})"),
                unit="percentunit",
            )
        )
    )


def _hosts(d: Dashboard) -> Dashboard:
    return (
        d.with_row(row("Hosts"))
        .with_panel(
            graph(
                "CPU usage",
                Query(f"haetae_host_cpu_usage_ratio{A}", "{{agent}}"),
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "CPU by mode",
                Query(
                    f"avg by (agent, mode) (haetae_host_cpu_mode_ratio{A})", "{{agent}} {{mode}}"
                ),
                unit="percentunit",
                stack=True,
            )
        )
        .with_panel(
            graph(
                "Load per CPU",
                Query(f"haetae_host_load1{A} / haetae_host_cpu_count{A}", "{{agent}} 1m"),
                Query(f"haetae_host_load5{A} / haetae_host_cpu_count{A}", "{{agent}} 5m"),
                Query(f"haetae_host_load15{A} / haetae_host_cpu_count{A}", "{{agent}} 15m"),
            )
        )
        .with_panel(
            graph(
                "Memory",
                Query(
                    f"haetae_host_memory_total_bytes{A} - haetae_host_memory_available_bytes{A}",
                    "{{agent}} used",
                ),
                Query(f"haetae_host_swap_used_bytes{A}", "{{agent}} swap used"),
                unit="bytes",
            )
        )
        .with_panel(
            graph(
                "Filesystem used",
                Query(f"haetae_host_filesystem_used_ratio{A}", "{{agent}} {{mountpoint}}"),
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "Disk throughput",
                Query(
                    f"sum by (agent) (rate(haetae_host_disk_read_bytes_total{A}[{RATE}]))",
                    "{{agent}} read",
                ),
                Query(
                    f"sum by (agent) (rate(haetae_host_disk_written_bytes_total{A}[{RATE}]))",
                    "{{agent}} written",
                ),
                unit="Bps",
            )
        )
        .with_panel(
            graph(
                "Disk busy",
                Query(
                    f"rate(haetae_host_disk_io_time_seconds_total{A}[{RATE}])",
                    "{{agent}} {{device}}",
                ),
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "Network",
                Query(
                    f"sum by (agent) (rate(haetae_host_network_receive_bytes_total{A}[{RATE}]))",
                    "{{agent}} in",
                ),
                Query(
                    f"sum by (agent) (rate(haetae_host_network_transmit_bytes_total{A}[{RATE}]))",
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
                    f"(rate(haetae_host_network_receive_errors_total{A}[{RATE}]) "
                    f"+ rate(haetae_host_network_transmit_errors_total{A}[{RATE}]))",
                    "{{agent}} errors",
                ),
                Query(
                    "sum by (agent) "
                    f"(rate(haetae_host_network_receive_drop_total{A}[{RATE}]) "
                    f"+ rate(haetae_host_network_transmit_drop_total{A}[{RATE}]))",
                    "{{agent}} drops",
                ),
                unit="pps",
            )
        )
    )
