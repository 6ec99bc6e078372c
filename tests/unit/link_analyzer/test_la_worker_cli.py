"""``haetae worker --metrics-port/--concurrency`` override the link_analyzer.queue config."""

from __future__ import annotations

from typing import Any

import pytest

import link_analyzer.runner
from haetae.cli import main


@pytest.mark.parametrize(
    ("argv", "port", "concurrency"),
    [
        ([], 8344, 32),
        (["--metrics-port", "9100", "--concurrency", "3"], 9100, 3),
        (["--metrics-port", "0"], 0, 32),
        (["--metrics-port", "-1"], None, 32),
    ],
)
def test_worker_options(
    argv: list[str], port: int | None, concurrency: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    async def fake_run_worker(config: Any, redis_url: str, **_: Any) -> None:
        seen["queue"] = config.queue
        seen["redis_url"] = redis_url

    monkeypatch.setattr(link_analyzer.runner, "run_worker", fake_run_worker)
    monkeypatch.setenv("HAETAE_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["worker", *argv]) == 0
    assert seen["queue"].worker_metrics_port == port
    assert seen["queue"].worker_concurrency == concurrency
    assert seen["redis_url"] == "redis://127.0.0.1:1/0"


def test_worker_processes_option(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run_worker_processes(config: Any, redis_url: str, processes: int, **_: Any) -> int:
        seen["processes"] = processes
        seen["concurrency"] = config.queue.worker_concurrency
        return 0

    monkeypatch.setattr(link_analyzer.runner, "run_worker_processes", fake_run_worker_processes)
    monkeypatch.setenv("HAETAE_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["worker", "--processes", "3", "--concurrency", "50"]) == 0
    assert seen == {"processes": 3, "concurrency": 50}
