"""Typed configuration: strict YAML loading with prefixed environment overrides."""

from haetae.config.errors import ConfigError
from haetae.config.loader import StrictModel, apply_env_overrides, load, load_file, redacted

__all__ = ["ConfigError", "StrictModel", "apply_env_overrides", "load", "load_file", "redacted"]
