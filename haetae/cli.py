"""The ``haetae`` command: ``up``, ``control-plane``, ``agent``, ``demo-app``, ``db migrate``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from haetae import __version__
from haetae.config import ConfigError

if TYPE_CHECKING:
    from pydantic import SecretStr

DEFAULT_DATA_DIR = Path(".haetae")


def _env_or(name: str) -> str | None:
    value = os.environ.get(name)
    return value or None


def cmd_control_plane(args: argparse.Namespace) -> int:
    from control_plane.app import create_app
    from control_plane.config import load_config
    from haetae.backing import backing_services
    from haetae.logs import setup_logging
    from haetae.web.server import run_app

    config = load_config(args.config)
    setup_logging(
        config.logging.level, json_format=config.logging.json_format, service="haetae-control-plane"
    )
    pg = config.postgres.dsn.get_secret_value() if config.postgres.dsn else None
    rd = config.redis.url.get_secret_value() if config.redis.url else None
    with backing_services(args.data_dir, postgres_dsn=pg, redis_url=rd) as backing:
        config = config.model_copy(
            update={
                "postgres": config.postgres.model_copy(
                    update={"dsn": _secret(backing.postgres_dsn)}
                ),
                "redis": config.redis.model_copy(update={"url": _secret(backing.redis_url)}),
            }
        )
        app = create_app(config)
        # SIGINT/SIGTERM become a graceful shutdown that runs every cleanup_ctx; connections get
        # problem+json protocol errors and a request-head deadline.
        run_app(
            app,
            host=config.http.host,
            port=config.http.port,
            header_timeout_s=config.http.header_timeout_s,
            shutdown_timeout=10,
        )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    import asyncpg

    from control_plane.config import load_config
    from control_plane.store import apply_migrations
    from haetae.backing import backing_services

    config = load_config(args.config)
    pg = config.postgres.dsn.get_secret_value() if config.postgres.dsn else None

    async def run(dsn: str) -> list[int]:
        conn = await asyncpg.connect(dsn)
        try:
            return await apply_migrations(conn)
        finally:
            await conn.close()

    # Only PostgreSQL is needed here; an embedded Redis would be started for nothing.
    with backing_services(args.data_dir, postgres_dsn=pg, redis_url="unused") as backing:
        applied = asyncio.run(run(backing.postgres_dsn))
    print(f"applied migrations: {applied}" if applied else "database is up to date")
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from agent.config import load_config

    config = load_config(args.config)  # validated here: errors name the key and the file
    if hasattr(os, "memfd_create"):
        _exec_lean_agent(config)  # does not return
    # No anonymous files on this platform: run in this process (pydantic stays loaded).
    from agent.service import main_async
    from haetae.logs import setup_logging

    setup_logging("INFO", service="haetae-agent")
    asyncio.run(main_async(config))
    return 0


def _exec_lean_agent(config: object) -> None:
    """Replace this process (same pid, so signals and supervisors are unaffected) with
    ``python -m agent``, handing it the validated config through an inherited anonymous file.

    The running agent then never imports pydantic or PyYAML (~8-12 MiB of RSS). The config
    travels by descriptor, not argv or environment, because it may hold the enrolment token.
    """
    import subprocess

    from agent.settings import from_config, to_json

    data = to_json(from_config(config))
    fd = os.memfd_create("haetae-agent-settings", 0)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Keep the interpreter's own options (-W, -X ...) in the new image; -P keeps the working
    # directory off sys.path, so a local folder named `agent` cannot stand in for ours.
    flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    argv = [sys.executable, *flags, "-P", "-m", "agent", "--settings-fd", str(fd)]
    os.execv(sys.executable, argv)


def cmd_worker(args: argparse.Namespace) -> int:
    from control_plane.config import load_config
    from haetae.logs import setup_logging
    from link_analyzer.runner import run_worker, run_worker_processes

    config = load_config(args.config)
    setup_logging(
        config.logging.level, json_format=config.logging.json_format, service="haetae-worker"
    )
    if config.redis.url is None:
        print("haetae: the link-analysis worker needs HAETAE_REDIS_URL", file=sys.stderr)
        return 2
    la = config.link_analyzer
    overrides: dict[str, object] = {}
    if args.metrics_port is not None:
        # -1 turns the worker's /metrics off; 0 picks a free port.
        overrides["worker_metrics_port"] = None if args.metrics_port < 0 else args.metrics_port
    if args.concurrency is not None:
        overrides["worker_concurrency"] = args.concurrency
    if overrides:
        queue = type(la.queue).model_validate({**la.queue.model_dump(), **overrides})
        la = la.model_copy(update={"queue": queue})
    if args.processes > 1:
        # One event loop per process: concurrent analyses spread over the cores.
        return run_worker_processes(
            la,
            config.redis.url.get_secret_value(),
            args.processes,
            log_level=config.logging.level,
            json_logs=config.logging.json_format,
        )
    asyncio.run(run_worker(la, config.redis.url.get_secret_value()))
    return 0


def cmd_demo_app(args: argparse.Namespace) -> int:
    from haetae.demo_app import create_demo_app
    from haetae.web.server import run_app

    run_app(create_demo_app(), host=args.host, port=args.port)
    return 0


def cmd_demo_peers(args: argparse.Namespace) -> int:
    from haetae.demo_peers import create_peers_app
    from haetae.web.server import run_app

    run_app(create_peers_app(), host=args.host, port=args.port)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from haetae.up import UpOptions, run_up

    return run_up(
        UpOptions(
            data_dir=args.data_dir,
            host=args.host,
            control_plane_port=args.control_plane_port,
            agent_port=args.agent_port,
            demo_port=args.demo_port,
            peers_port=args.peers_port,
            interval_s=args.interval,
        )
    )


def _secret(value: str) -> SecretStr:
    from pydantic import SecretStr

    return SecretStr(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haetae",
        description="Haetae: observability agent and control plane. "
        "Start with `haetae up` to run everything on embedded servers.",
    )
    parser.add_argument("--version", action="version", version=f"haetae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            type=Path,
            default=DEFAULT_DATA_DIR,
            help="where embedded servers keep their data (default: ./.haetae)",
        )

    up = sub.add_parser(
        "up",
        help="run everything: embedded PostgreSQL/Redis (unless DSNs are set), control "
        "plane, one agent and a demo app",
        description="Run the whole system. HAETAE_POSTGRES_DSN / HAETAE_REDIS_URL select "
        "external servers; otherwise embedded ones are started with data under --data-dir.",
    )
    data_dir(up)
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    up.add_argument("--control-plane-port", type=int, default=8340)
    up.add_argument("--agent-port", type=int, default=8341)
    up.add_argument("--demo-port", type=int, default=8342)
    up.add_argument("--peers-port", type=int, default=8343)
    up.add_argument(
        "--interval",
        type=float,
        default=5.0,
        help="agent collection interval in seconds (default: 5)",
    )
    up.set_defaults(func=cmd_up)

    cp = sub.add_parser(
        "control-plane",
        help="run the control plane (HTTP API, ingest)",
        description="Config from --config YAML and HAETAE_* variables.",
    )
    cp.add_argument("--config", type=Path, help="YAML config file (see deploy/control-plane.yaml)")
    data_dir(cp)
    cp.set_defaults(func=cmd_control_plane)

    ag = sub.add_parser(
        "agent",
        help="run the agent beside an app process",
        description="Config from --config YAML and HAETAE_AGENT_* variables.",
    )
    ag.add_argument("--config", type=Path, help="YAML config file (see deploy/agent.yaml)")
    ag.set_defaults(func=cmd_agent)

    wk = sub.add_parser(
        "worker",
        help="run link-analysis workers (the Redis job queue)",
        description="Uses the control-plane config (redis, link_analyzer).",
    )
    wk.add_argument("--config", type=Path, help="control-plane YAML config file")
    wk.add_argument(
        "--metrics-port",
        type=int,
        help="loopback port of the worker's own /metrics and /health "
        "(default link_analyzer.queue.worker_metrics_port, 8344; 0: any free port; -1: off)",
    )
    wk.add_argument(
        "--concurrency", type=int, help="jobs run at once (default queue.worker_concurrency)"
    )
    wk.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes on the same queue, one event loop each (default 1; with a fixed "
        "--metrics-port, process i serves /metrics on that port + i)",
    )
    wk.set_defaults(func=cmd_worker)

    demo = sub.add_parser("demo-app", help="run the demo app that `up` watches")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8342)
    demo.set_defaults(func=cmd_demo_app)

    peers = sub.add_parser(
        "demo-peers",
        help="run local Slack and KakaoTalk AlimTalk stand-ins that `up` notifies",
    )
    peers.add_argument("--host", default="127.0.0.1")
    peers.add_argument("--port", type=int, default=8343)
    peers.set_defaults(func=cmd_demo_peers)

    rules = sub.add_parser(
        "rules",
        help="check or export alerting rules (`haetae rules check FILE`, "
        "`haetae rules export --format prometheus`)",
        add_help=False,
    )
    rules.add_argument("rules_args", nargs=argparse.REMAINDER)  # parsed by main()

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    mig = db_sub.add_parser("migrate", help="apply pending SQL migrations")
    mig.add_argument("--config", type=Path, help="control-plane YAML config file")
    data_dir(mig)
    mig.set_defaults(func=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["rules"]:
        # `haetae rules` has its own parser (and --help); hand it everything after the word.
        from control_plane.rules.cli import main as rules_main

        return rules_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"haetae: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
