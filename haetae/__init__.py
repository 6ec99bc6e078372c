"""Haetae: the shared kit imported by the agent, the control plane and any Python app."""

__version__ = "0.1.0"

__all__ = ["__version__"]
