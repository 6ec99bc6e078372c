"""The embedded servers as real processes: contrib modules, leftovers of killed runs, stale pid
files, and no survivor when their parent is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import psutil
import pytest

from haetae.embedded import EmbeddedPostgres, EmbeddedRedis
from haetae.embedded.postgres import postgres_install
from haetae.embedded.redis import redis_server_binary
from haetae.procs import processes_in


def wait_gone(directory: Path, name: str, timeout_s: float = 10.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while (left := processes_in(directory, name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_postgres_ships_trigram_and_statement_statistics(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg", cleanup="delete")
    dsn = pg.start()

    async def check() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("CREATE EXTENSION pg_trgm; CREATE EXTENSION pg_stat_statements")
            # Hangul counts as letters (a UTF-8 LC_CTYPE), so Korean log lines are searchable.
            assert await conn.fetchval("SELECT similarity('해태 관측', '해태 관측 에이전트')") > 0.3
            # pg_stat_statements is preloaded, so its view answers instead of raising.
            assert await conn.fetchval("SELECT count(*) FROM pg_stat_statements") >= 1
            assert (await conn.fetchval("SHOW server_version")).startswith("18.")
        finally:
            await conn.close()

    try:
        asyncio.run(check())
    finally:
        pg.stop()
    assert not (tmp_path / "pg").exists()


def test_postgres_starts_over_a_pid_file_naming_a_live_unrelated_process(tmp_path: Path) -> None:
    """A killed run's postmaster.pid whose pid now belongs to another process: PostgreSQL alone
    refuses to start ("lock file already exists"); here it is recognised as stale."""
    pg = EmbeddedPostgres(tmp_path / "pg")
    pg.start()
    pg.stop()
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "pg" / "postmaster.pid").write_text(
            f"{unrelated.pid}\n{tmp_path / 'pg'}\n1700000000\n5432\n{tmp_path / 'pg'}\n\n"
            "  1 0\nready   \n"
        )
        pg.start()
        assert pg.poll() is None
        pg.stop()
        assert unrelated.poll() is None  # not ours: untouched
    finally:
        unrelated.kill()
        unrelated.wait()
    assert wait_gone(tmp_path / "pg", "postgres") == []
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


def test_postgres_stops_a_server_left_by_an_older_run_before_starting(tmp_path: Path) -> None:
    """An older run started the server through pg_ctl (it daemonises and outlived its
    supervisor): the next start stops it rather than failing or sharing the data directory,
    and the next clean stop leaves nothing running."""
    pg = EmbeddedPostgres(tmp_path / "pg")
    pg.start()
    pg.stop()
    pg_ctl = [str(postgres_install() / "bin" / "pg_ctl"), "-D", str(tmp_path / "pg"), "-w"]
    subprocess.run(
        [*pg_ctl, "-o", f"-c listen_addresses= -k {tmp_path / 'pg'}",
         "-l", str(tmp_path / "pg" / "old.log"), "start"],
        check=True, capture_output=True, **_as_server_user(tmp_path / "pg"),
    )  # fmt: skip
    old = processes_in(tmp_path / "pg", "postgres")
    assert old, "the pg_ctl server did not start"
    pg.start()
    assert all(not p.is_running() for p in old)
    assert {p.pid for p in processes_in(tmp_path / "pg", "postgres")} >= {pg.pid}
    pg.stop()
    assert wait_gone(tmp_path / "pg", "postgres") == []


def test_redis_stops_a_server_left_by_an_older_run(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    data.mkdir()
    subprocess.run(
        [redis_server_binary(), "--port", "0", "--unixsocket", str(data / "redis.sock"),
         "--dir", str(data), "--daemonize", "yes", "--save", ""],
        check=True, capture_output=True,
    )  # fmt: skip
    old = processes_in(data, "redis-server")
    assert old
    server = EmbeddedRedis(data, persist=False)
    server.start()
    try:
        assert all(not p.is_running() for p in old)
        assert [p.pid for p in processes_in(data, "redis-server")] == [server.pid]
    finally:
        server.stop()
    assert wait_gone(data, "redis-server") == []


KEEPER = """
import sys, time
from pathlib import Path
from haetae.embedded import EmbeddedPostgres, EmbeddedRedis
d = Path(sys.argv[1])
pg = EmbeddedPostgres(d / "pg"); pg.start()
rd = EmbeddedRedis(d / "redis"); rd.start()
print(pg.pid, rd.pid, flush=True)
time.sleep(600)
"""


def test_no_server_survives_its_parent_killed_by_sigkill(tmp_path: Path) -> None:
    keeper = subprocess.Popen(
        [sys.executable, "-c", KEEPER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert keeper.stdout is not None
    with keeper.stdout:
        pids = [int(p) for p in keeper.stdout.readline().split()]
    assert len(pids) == 2, "the embedded servers did not start"
    assert processes_in(tmp_path / "pg", "postgres")
    keeper.send_signal(signal.SIGKILL)
    keeper.wait()
    assert wait_gone(tmp_path / "pg", "postgres", 10) == []
    assert wait_gone(tmp_path / "redis", "redis-server", 10) == []
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
    # A clean fast shutdown: the next start needs no crash recovery and no lock cleanup.
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


def _as_server_user(pgdata: Path) -> dict[str, int]:
    """pg_ctl must run as the data directory's owner (the service user under root)."""
    if os.geteuid() != 0:
        return {}
    st = pgdata.stat()
    return {"user": st.st_uid, "group": st.st_gid}


@pytest.mark.parametrize("old_version", ["16"])
def test_postgres_moves_data_of_another_major_version_aside(
    tmp_path: Path, old_version: str
) -> None:
    """`make run` data from pgserver (PostgreSQL 16) cannot be opened by PostgreSQL 18."""
    old = tmp_path / "pg"
    old.mkdir()
    (old / "PG_VERSION").write_text(f"{old_version}\n")
    pg = EmbeddedPostgres(old)
    pg.start()
    pg.stop()
    assert (tmp_path / f"pg-{old_version}" / "PG_VERSION").read_text().strip() == old_version
    assert (old / "PG_VERSION").read_text().strip() == "18"
