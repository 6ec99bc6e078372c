"""Embedded PostgreSQL and Redis for zero-config runs and tests (same drivers, real servers)."""

from haetae.embedded.postgres import EmbeddedPostgres
from haetae.embedded.redis import EmbeddedRedis

__all__ = ["EmbeddedPostgres", "EmbeddedRedis"]
