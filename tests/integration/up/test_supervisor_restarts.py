"""The supervisor over fake services and a fake clock: restart with backoff, say so, reset the
backoff after a stable run, retry a failed start; plus the rotating child logs and private files."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from haetae.logs import RotatingLogFile
from haetae.private_files import private_dir, write_private_file
from haetae.supervisor import Supervisor, backoff_s


class FakeService:
    def __init__(self, name: str) -> None:
        self.name = name
        self.log_path = Path(f"/logs/{name}.log")
        self.pid: int | None = 100
        self.exit_code: int | None = None
        self.starts = 0
        self.fail_starts = 0
        self.stopped = False

    def start(self) -> None:
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("socket in use")
        self.starts += 1
        self.pid = 100 + self.starts
        self.exit_code = None

    def poll(self) -> int | None:
        return self.exit_code

    def stop(self) -> None:
        self.stopped = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_thirty_seconds() -> None:
    assert [backoff_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_killed_service_is_restarted_after_its_backoff_with_a_console_line() -> None:
    clock, out = Clock(), io.StringIO()
    redis, other = FakeService("redis"), FakeService("worker")
    sup = Supervisor([redis, other], out=out, clock=clock)
    sup.check()
    assert out.getvalue() == ""
    redis.exit_code = -9
    sup.check()
    assert "redis (pid 100) was killed by SIGKILL; restarting in 1s" in out.getvalue()
    assert "/logs/redis.log" in out.getvalue()
    clock.now += 0.5
    sup.check()
    assert redis.starts == 0
    clock.now += 0.6
    sup.check()
    assert redis.starts == 1 and other.starts == 0
    assert out.getvalue().endswith("haetae: redis restarted (pid 101)\n")
    # Dies again soon: the next wait is longer; after a stable minute it starts over at 1 s.
    clock.now += 5
    redis.exit_code = 1
    sup.check()
    assert "redis (pid 101) exited with status 1; restarting in 2s" in out.getvalue()
    clock.now += 2
    sup.check()
    clock.now += 61
    redis.exit_code = -15
    sup.check()
    assert (
        out.getvalue()
        .rstrip()
        .endswith("was killed by SIGTERM; restarting in 1s (log: /logs/redis.log)")
    )


def test_a_failed_restart_is_retried_with_a_longer_wait() -> None:
    clock, out = Clock(), io.StringIO()
    pg = FakeService("postgres")
    sup = Supervisor([pg], out=out, clock=clock)
    pg.exit_code = -9
    pg.fail_starts = 1
    sup.check()
    clock.now += 1
    sup.check()
    assert "postgres did not restart (socket in use); retrying in 2s" in out.getvalue()
    clock.now += 2
    sup.check()
    assert pg.starts == 1 and "postgres restarted" in out.getvalue()


def test_stop_all_stops_in_reverse_order_of_start() -> None:
    order: list[str] = []
    services = [FakeService(n) for n in ("postgres", "redis", "control-plane")]
    for s in services:
        s.stop = lambda s=s: order.append(s.name)  # type: ignore[method-assign]
    Supervisor(services, out=io.StringIO()).stop_all()  # type: ignore[arg-type]
    assert order == ["control-plane", "redis", "postgres"]


def test_rotating_log_bounds_a_childs_output(tmp_path: Path) -> None:
    log = RotatingLogFile(tmp_path / "child.log", max_bytes=1000, backups=2)
    for i in range(100):
        log.write(f"line {i:04d} ".encode() * 10 + b"\n")
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["child.log", "child.log.1", "child.log.2"]
    assert all((tmp_path / f).stat().st_size <= 1000 for f in files)
    assert b"line 0099" in (tmp_path / "child.log").read_bytes()
    assert stat.S_IMODE((tmp_path / "child.log").stat().st_mode) == 0o600


def test_private_files_are_never_readable_by_others(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the widest umask: the mode must not come from it
    try:
        target = tmp_path / "control-plane.yaml"
        target.write_text("old")
        target.chmod(0o644)
        write_private_file(target, "token: s3cret\n")
        assert target.read_text() == "token: s3cret\n"
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["control-plane.yaml"]  # no temp left
        wide = tmp_path / "data"
        wide.mkdir(mode=0o755)
        assert stat.S_IMODE(private_dir(wide).stat().st_mode) == 0o700
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize("code,words", [(-9, "killed by SIGKILL"), (3, "exited with status 3")])
def test_exit_descriptions(code: int, words: str) -> None:
    from haetae.supervisor import describe_exit

    assert describe_exit(code) == f"{'was ' if code < 0 else ''}{words}"
