"""Cross-replica notification latency: a transition on replica A, sent by replica B.

Two processes on one PostgreSQL (embedded, under a temp dir), each with its own event loop and
connection pool, running the control plane's alerting code:

- replica A records an alert transition (as its rule engine does) and runs its notification
  stages up to the outbox (dispatch into the group, flush into an outbox row) - it has no
  channel for the destination, so it cannot send;
- replica B runs the notification pipeline (`Notifier`, background loops, `tick_s` 0.2 s, the
  default) with the webhook channel; with LISTEN/NOTIFY it also listens for wake-ups.

Each trial (a new alert, route group_wait 0 s) measures from A's commit of the transition to the
webhook receiver (in this process) getting the notification. A random 0.3-0.7 s pause before
each trial puts the transitions at random phases of B's poll.

    .venv/bin/python benchmarks/alert_ha_wakeup.py [--trials 20] [--code DIR]
    .venv/bin/python benchmarks/alert_ha_wakeup.py --scenario escalation   # A's incident timer

``--scenario escalation``: A opens an incident whose escalation is due 0.3 s later; B runs the
escalation timers and sends the page; measured from the due time to the webhook.

``--code DIR`` runs both replicas on another checkout of the code, e.g. the code before
LISTEN/NOTIFY: ``git archive HEAD | tar -x -C /tmp/haetae-before`` (B then only polls).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ESCALATE_IN_S = 0.3
TRIAL = re.compile(r"Trial\d+")


def notify_config(hook: str) -> Any:
    from control_plane.config import (
        EscalationLevelConfig,
        EscalationPolicyConfig,
        NotifyConfig,
        ReceiverConfig,
        RouteConfig,
        WebhookChannelConfig,
    )

    return NotifyConfig(
        receivers=[ReceiverConfig(name="ops", webhook=[WebhookChannelConfig(url=hook)])],
        routes=[
            RouteConfig(receiver="ops", group_by=["alertname"], group_wait_s=0, group_interval_s=60)
        ],
        escalation_policies=[
            EscalationPolicyConfig(
                name="page", levels=[EscalationLevelConfig(receivers=["ops"], wait_s=3600)]
            )
        ],
        tick_s=0.2,
    )


async def pool_for(dsn: str) -> Any:
    from control_plane.config import PostgresConfig
    from control_plane.store import create_pool

    return await create_pool(dsn, PostgresConfig(pool_min_size=1, pool_max_size=6))


async def replica_b(dsn: str, hook: str) -> None:
    """The sender: the notification pipeline's background loops until stdin closes."""
    import asyncpg

    from control_plane.alerting import Notifier

    pool = await pool_for(dsn)

    async def listen() -> asyncpg.Connection:
        return await asyncpg.connect(dsn)

    kwargs: dict[str, Any] = {}
    if "listen" in inspect.signature(Notifier).parameters:
        kwargs["listen"] = listen
    async with Notifier(pool, notify_config(hook), **kwargs):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def replica_a(dsn: str, hook: str, trials: int, seed: int, scenario: str) -> None:
    """The producer: a transition, dispatched and flushed here, per trial (or an incident whose
    escalation is due ``ESCALATE_IN_S`` later); prints its times."""
    import datetime as dt

    from control_plane.alerting.dispatch import dispatch_events
    from control_plane.alerting.flush import flush_due
    from control_plane.alerting.incidents import open_incident
    from control_plane.alerting.routing import Route

    cfg = notify_config(hook)
    routes = [Route.from_config(i, r) for i, r in enumerate(cfg.routes)]
    pool = await pool_for(dsn)
    rng = random.Random(seed)
    for i in range(trials):
        await asyncio.sleep(rng.uniform(0.3, 0.7))
        name = f"Trial{i}"
        t0 = time.time()
        if scenario == "escalation":
            async with pool.acquire() as conn, conn.transaction():
                await open_incident(
                    conn, name, "page", t0, group_key=name, escalate_at=t0 + ESCALATE_IN_S
                )
            # Measured from the escalation's due time.
            print(json.dumps({"name": name, "t0": t0 + ESCALATE_IN_S}), flush=True)
            continue
        await pool.execute(
            """INSERT INTO alert_events (at, rule_name, fingerprint, labels, previous, state,
                                         flapping, value, annotations)
               VALUES ($1, $2, $3, $4, 'pending', 'firing', false, 1.0, '{}'::jsonb)""",
            dt.datetime.fromtimestamp(t0, dt.UTC),
            name,
            f"fp-{name}",
            {"alertname": name},
        )
        now = time.time()
        await dispatch_events(pool, routes, now)
        # B may have flushed it already (woken by the group's NOTIFY): fine either way.
        await flush_due(pool, {"ops": ["ops/webhook/0"]}, now)
        print(json.dumps({"name": name, "t0": t0}), flush=True)


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.cond = threading.Condition()

    def serve(self) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                self.send_response(200)
                self.end_headers()
                found = TRIAL.search(body)
                with receiver.cond:
                    name = found.group(0) if found else "?"
                    receiver.count[name] = receiver.count.get(name, 0) + 1
                    receiver.arrivals.setdefault(name, now)
                    receiver.cond.notify_all()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--scenario",
        choices=["send", "escalation"],
        default="send",
        help="send: A files the transition up to the outbox; escalation: A opens an incident"
        f" escalating {ESCALATE_IN_S} s later (measured from that due time)",
    )
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout both replicas run")
    parser.add_argument("--role", choices=["a", "b"], help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--hook", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "a":
        asyncio.run(replica_a(args.dsn, args.hook, args.trials, args.seed, args.scenario))
        return
    if args.role == "b":
        asyncio.run(replica_b(args.dsn, args.hook))
        return

    from haetae.embedded import EmbeddedPostgres

    code = args.code.resolve()
    env = dict(os.environ, PYTHONPATH=str(code))
    with tempfile.TemporaryDirectory(prefix="haetae-ha-wakeup-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", cleanup="delete", database="haetae")
        dsn = server.start()
        receiver = Receiver()
        http = receiver.serve()
        hook = f"http://127.0.0.1:{http.server_address[1]}/hook"
        me = [sys.executable, str(Path(__file__).resolve()), "--dsn", dsn, "--hook", hook]
        try:
            subprocess.run(
                [sys.executable, "-c", MIGRATE, dsn], env=env, check=True, cwd=code, timeout=120
            )
            b = subprocess.Popen(
                [*me, "--role", "b"],
                env=env,
                cwd=code,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert b.stdout is not None and b.stdin is not None
            assert b.stdout.readline().strip() == "ready"
            time.sleep(1.0)  # B's listener subscribed
            a = subprocess.run(
                [
                    *me,
                    "--role",
                    "a",
                    "--trials",
                    str(args.trials),
                    "--seed",
                    str(args.seed),
                    "--scenario",
                    args.scenario,
                ],
                env=env,
                cwd=code,
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            sent = [json.loads(line) for line in a.stdout.splitlines() if line.startswith("{")]
            deadline = time.time() + 10
            with receiver.cond:
                while len(receiver.arrivals) < len(sent) and time.time() < deadline:
                    receiver.cond.wait(deadline - time.time())
            time.sleep(0.5)  # a duplicate would arrive meanwhile
            b.stdin.close()
            b.wait(30)
        finally:
            http.shutdown()
            server.stop()
    latencies = sorted(
        receiver.arrivals[s["name"]] - s["t0"] for s in sent if s["name"] in receiver.arrivals
    )
    lost = len(sent) - len(latencies)
    print(f"code: {code}, scenario: {args.scenario}")
    twice = sum(1 for n in receiver.count.values() if n > 1)
    print(f"trials: {len(sent)}, received: {len(latencies)}, lost: {lost}, sent twice: {twice}")
    if latencies:
        p95 = latencies[max(0, int(len(latencies) * 0.95 + 0.5) - 1)]
        print(
            f"on A -> webhook via B (s): p50 {statistics.median(latencies):.3f}"
            f" / p95 {p95:.3f} / max {latencies[-1]:.3f} / min {latencies[0]:.3f}"
        )


MIGRATE = """
import asyncio, sys
import asyncpg
from control_plane.store import apply_migrations

async def go():
    conn = await asyncpg.connect(sys.argv[1])
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()

asyncio.run(go())
"""

if __name__ == "__main__":
    main()
