"""The Prometheus HTTP API (``/api/v1/*``) over the stored samples and the ingest windows."""

from control_plane.promapi.engine import QueryEngine
from control_plane.promapi.errors import ErrorType, PromApiError
from control_plane.promapi.routes import PROMAPI, PromApi, setup_routes
from control_plane.promapi.snapshot import Snapshot, selector_needs

__all__ = [
    "PROMAPI",
    "ErrorType",
    "PromApi",
    "PromApiError",
    "QueryEngine",
    "Snapshot",
    "selector_needs",
    "setup_routes",
]
