"""Config errors carry the key at fault and where it came from."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid.

    ``key`` is the dotted path (``ingest.retention_days``); ``source`` names the file or
    environment variable the value came from.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        self.key = key
        self.source = source
        where = f"{source}: " if source else ""
        at = f"{key}: " if key else ""
        super().__init__(f"{where}{at}{message}")
