"""One module per board; ``BOARDS`` maps each board's file stem to the function that builds it."""

from collections.abc import Callable

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.boards import alerting, app, cache, fleet, link_analyzer

BOARDS: dict[str, Callable[[], Dashboard]] = {
    "haetae-fleet": fleet.board,
    "haetae-app": app.board,
    "haetae-cache": cache.board,
    "haetae-alerting": alerting.board,
    "haetae-link-analyzer": link_analyzer.board,
}

__all__ = ["BOARDS"]
