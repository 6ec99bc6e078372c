"""An embedded PostgreSQL server from the ``pgserver`` wheel, data kept under a directory."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("haetae.embedded")


class EmbeddedPostgres:
    """Start (or reuse) a PostgreSQL server on a unix socket in ``data_dir``.

    ``cleanup="stop"`` stops the server when this handle closes; ``"delete"`` also removes the
    data (for tests). The DSN uses the unix socket, so no TCP port is taken.
    """

    def __init__(self, data_dir: Path, *, cleanup: str = "stop", database: str = "haetae"):
        self.data_dir = Path(data_dir)
        self.cleanup_mode = cleanup
        self.database = database
        self._server: Any = None

    def start(self) -> str:
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (services, CI): harmless.
                warnings.simplefilter("ignore", UserWarning)
                import pgserver
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "no HAETAE_POSTGRES_DSN is set and the embedded PostgreSQL is not installed: "
                "pip install 'haetae[embedded]'"
            ) from exc
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # pgserver logs every pg_ctl/initdb transcript at INFO: keep only its warnings.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (services, CI): harmless here.
            warnings.simplefilter("ignore", UserWarning)
            self._server = pgserver.get_server(self.data_dir, cleanup_mode=self.cleanup_mode)
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';")
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{self.database}";')
        dsn = str(self._server.get_uri(self.database))
        log.info("embedded PostgreSQL ready", extra={"haetae.dsn_dir": str(self.data_dir)})
        return dsn

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
