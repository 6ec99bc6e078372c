"""Helpers for the cache tests: a cache factory type, a TCP proxy that can cut connections and a
local Redis Cluster."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from haetae.cache import LayeredCache
from haetae.embedded.redis import redis_server_binary
from haetae.procs import die_with_parent

MakeCache = Callable[..., Awaitable[LayeredCache]]


class LocalCluster:
    """A Redis Cluster of ``masters`` masters (no replicas) on loopback ports, started from the
    redis-server binary; slots split evenly. ``kill(i)`` SIGKILLs master ``i``."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.ports = _free_cluster_ports(masters)
        self.procs: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            node_dir = workdir / str(port)
            node_dir.mkdir()
            self.procs.append(
                subprocess.Popen(
                    [
                        redis_server_binary(),
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(node_dir),
                    ],
                    stdout=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                )
            )
        try:
            self._form()
        except BaseException:
            self.stop()
            raise

    def _form(self) -> None:
        clients = []
        for port in self.ports:
            for _ in range(200):
                try:
                    c = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
                    c.ping()
                    clients.append(c)
                    break
                except redis.ConnectionError:
                    time.sleep(0.02)
        n = len(self.ports)
        per = 16384 // n
        for i, c in enumerate(clients):
            # Distinct epochs up front: no collision to resolve, so the cluster agrees fast.
            c.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)
            end = 16384 if i == n - 1 else (i + 1) * per
            c.execute_command("CLUSTER ADDSLOTS", *range(i * per, end))
        for port in self.ports[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)
        deadline = time.monotonic() + 15
        while not all(c.cluster("INFO").get("cluster_state") == "ok" for c in clients):
            assert time.monotonic() < deadline, "cluster did not converge"
            time.sleep(0.05)
        for c in clients:
            c.close()

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def node(self, i: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.ports[i], retry=Retry(NoBackoff(), 0))

    def kill(self, i: int) -> None:
        self.procs[i].kill()
        self.procs[i].wait()

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            p.wait()


def _free_cluster_ports(n: int) -> list[int]:
    """Ports whose cluster-bus twin (port + 10000) is free and valid too."""
    ports: list[int] = []
    rng = random.Random()
    while len(ports) < n:
        port = rng.randrange(20_000, 45_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports
