"""Collectors, one class per module, selectable by name from config."""

# Importing the modules registers their collectors in COLLECTORS.
from agent.collectors import app, health, host, process  # noqa: F401
from agent.collectors.base import (
    COLLECTORS,
    BlockingCollector,
    Collector,
    Sample,
    build_collectors,
    register,
)

__all__ = ["COLLECTORS", "BlockingCollector", "Collector", "Sample", "build_collectors", "register"]
