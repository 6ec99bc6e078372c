"""The Haetae agent: collects from the host and the watched app and reports to the control plane.

Names are resolved on first use so that the run-time entry (``python -m agent``) imports only
what the running agent needs (no pydantic, no YAML: see ``agent.settings``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.config import AgentConfig, load_config
    from agent.service import Agent, main_async, run_agent

__all__ = ["Agent", "AgentConfig", "load_config", "main_async", "run_agent"]

_WHERE = {
    "Agent": "agent.service",
    "main_async": "agent.service",
    "run_agent": "agent.service",
    "AgentConfig": "agent.config",
    "load_config": "agent.config",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
