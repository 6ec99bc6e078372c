"""Fixtures of the fuzz tests: a live control plane (see live_server.py)."""

from live_server import live_control_plane

__all__ = ["live_control_plane"]
