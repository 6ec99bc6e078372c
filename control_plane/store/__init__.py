"""PostgreSQL access: the pool, versioned migrations and the tables' queries."""

from control_plane.store.migrations import MigrationError, apply_migrations, list_migrations
from control_plane.store.pool import create_pool

__all__ = ["MigrationError", "apply_migrations", "create_pool", "list_migrations"]
