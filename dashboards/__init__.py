"""Haetae's Grafana dashboards, built as code with grafana-foundation-sdk.

``python -m dashboards.build`` writes one JSON file per board into ``dashboards/json/`` (what
Grafana's file provider in ``deploy/grafana/`` loads); ``--check`` fails when a file is stale.
"""

from dashboards.boards import BOARDS

__all__ = ["BOARDS"]
