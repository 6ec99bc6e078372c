"""`haetae control-plane` as operators run it: the hardened server is what listens (problem+json
protocol errors, half-sent heads closed after http.header_timeout_s), and SIGTERM is a graceful
exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests_support import free_port


def _http(port: int, raw: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture
def control_plane_process(db_dsn: str, redis_url: str, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAETAE_")} | {
        "HAETAE_POSTGRES_DSN": db_dsn,
        "HAETAE_REDIS_URL": redis_url,
        "HAETAE_HTTP_PORT": str(port),
        "HAETAE_HTTP_HEADER_TIMEOUT_S": "0.5",
        "HAETAE_AUTH_BOOTSTRAP_TOKEN_FILE": str(tmp_path / "admin.token"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "haetae.cli", "control-plane", "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if b" 200 " in _http(
                    port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                ):
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "the control plane did not start"
            time.sleep(0.2)
        yield port
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_the_served_control_plane_is_hardened(control_plane_process: int) -> None:
    port = control_plane_process
    answer = _http(port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"414"
    assert b"application/problem+json" in answer and b"aaaa" not in answer
    started = time.monotonic()
    answer = _http(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ", timeout=10)
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"408"
    assert time.monotonic() - started < 8
