"""The multi-layer cache: what every haetae.cache exports (haetae/cache/stats.py): lookups per
layer and outcome, L2 and loader latency, L1 evictions by reason (``invalidated`` counts the
invalidations an L1 applied), size, and the L2 circuit breaker."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable
from grafana_foundation_sdk.models import dashboard as model

from dashboards.panels import AGENT, DATASOURCE, RATE, Query, graph, new_board, row, single

# Hits are hit, stale and negative answers (as the default CacheHitRatioDrop rule counts them).
HIT = 'outcome=~"hit|stale|negative"'
SEL = AGENT + ',cache=~"$cache"'


def _hit_ratio(by: str, layers: str) -> str:
    lookups = f'haetae_cache_requests_total{{{SEL},layer=~"{layers}"'
    return (
        f"sum by ({by}) (rate({lookups},{HIT}}}[{RATE}])) "
        f"/ sum by ({by}) (rate({lookups}}}[{RATE}]))"
    )


def board() -> Dashboard:
    s = "{" + SEL + "}"
    return (
        new_board(
            "haetae-cache",
            "Haetae / Cache",
            "Hit ratio per layer, latency, evictions and invalidations of the haetae caches "
            "(the agents' L1, the apps' and the control plane's).",
            agents_from="haetae_cache_requests_total",
        )
        .with_variable(
            QueryVariable("cache")
            .label("Cache")
            .datasource(DATASOURCE)
            .query('label_values(haetae_cache_requests_total{agent=~"$agent"}, cache)')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        .with_row(row("Hit ratio"))
        .with_panel(single("L1 hit ratio", Query(_hit_ratio("layer", "l1")), unit="percentunit"))
        .with_panel(
            single(
                "Lookups / s",
                Query(f'sum(rate(haetae_cache_requests_total{{{SEL},layer="l1"}}[{RATE}]))'),
                unit="ops",
            )
        )
        .with_panel(single("Bytes in L1", Query(f"sum(haetae_cache_bytes{s})"), unit="bytes"))
        .with_panel(single("Entries in L1", Query(f"sum(haetae_cache_entries{s})")))
        .with_panel(
            graph(
                "Hit ratio per layer",
                Query(_hit_ratio("agent, cache, layer", "l1|l2"), "{{agent}} {{cache}} {{layer}}"),
                unit="percentunit",
            )
        )
        .with_panel(
            graph(
                "Lookups by layer and outcome",
                Query(
                    f"sum by (layer, outcome) (rate(haetae_cache_requests_total{s}[{RATE}]))",
                    "{{layer}} {{outcome}}",
                ),
                unit="ops",
                stack=True,
            )
        )
        .with_row(row("Latency"))
        .with_panel(
            graph(
                "L2 and loader latency (p50, p99)",
                *(
                    Query(
                        f"histogram_quantile({q}, sum by (layer, le) "
                        f"(rate(haetae_cache_latency_seconds_bucket{s}[{RATE}])))",
                        f"{{{{layer}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ),
                unit="s",
                description="An L1 hit is not timed: it costs well under a microsecond.",
            )
        )
        .with_row(row("Evictions and invalidation"))
        .with_panel(
            graph(
                "L1 evictions by reason",
                Query(
                    f"sum by (cache, reason) (rate(haetae_cache_evictions_total{s}[{RATE}]))",
                    "{{cache}} {{reason}}",
                ),
                unit="ops",
                description="size: W-TinyLFU made room; expired: TTL; invalidated: a key, tag "
                "or prefix invalidation from the stream.",
            )
        )
        .with_panel(
            graph(
                "L1 size",
                Query(f"haetae_cache_bytes{s}", "{{agent}} {{cache}} bytes"),
                unit="bytes",
            )
        )
    )
