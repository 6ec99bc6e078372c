"""A real single-node VictoriaMetrics (Debian's ``victoria-metrics``) on loopback, for the
remote-write-out and remote-store tests."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
from tests_support import free_port

VM_BINARY = "/usr/bin/victoria-metrics"
# labels (sorted pairs) -> [(ms, value)]
Exported = dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]


class VictoriaMetrics:
    """A real single-node VictoriaMetrics on loopback; stop() and start() keep its data."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.base = f"http://127.0.0.1:{self.port}"
        self.write_url = f"{self.base}/api/v1/write"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            VM_BINARY,
            f"-storageDataPath={self.data}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-loggerLevel=ERROR",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

        async def healthy() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(f"{self.base}/health") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        deadline = time.monotonic() + 30.0
        while not await healthy():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for VictoriaMetrics to start")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()  # graceful: VictoriaMetrics writes its buffers out
            try:
                await asyncio.wait_for(proc.wait(), 30.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def export(self, match: str) -> Exported:
        """Every raw sample of the series matching ``match``: labels -> [(ms, value)]."""
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{self.base}/internal/force_flush") as r:
                assert r.status == 200
            async with s.get(f"{self.base}/api/v1/export", params={"match[]": match}) as r:
                assert r.status == 200, await r.text()
                text = await r.text()
        out: Exported = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key = tuple(sorted(item["metric"].items()))
            out.setdefault(key, []).extend(zip(item["timestamps"], item["values"], strict=True))
        return out
