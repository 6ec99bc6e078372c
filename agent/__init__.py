"""The Haetae agent: collects from the host and the watched app and reports to the control plane."""

from agent.config import AgentConfig, load_config
from agent.service import Agent, main_async, run_agent

__all__ = ["Agent", "AgentConfig", "load_config", "main_async", "run_agent"]
