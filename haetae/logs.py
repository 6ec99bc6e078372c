"""Structured JSON logs with Elastic Common Schema field names (ships unchanged to ELK/Loki)."""

from __future__ import annotations

import logging
import sys

import ecs_logging


def setup_logging(
    level: str = "INFO", *, json_format: bool = True, service: str = "haetae"
) -> None:
    """Configure the root logger once per process: one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(ecs_logging.StdlibFormatter(extra={"service": {"name": service}}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Per-request access lines are already in the latency histogram; keep them out of INFO.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
