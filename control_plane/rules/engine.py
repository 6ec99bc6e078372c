"""The rule engine: evaluates the rules in force over the ingest windows and keeps the alerts.

A pass runs when ingest commits new samples (:meth:`RuleEngine.wake`, at most one pass per
``min_eval_interval_s``) and every ``eval_interval_s`` regardless (for ``for``,
``keep_firing_for`` and ``absent``). Agents are split into shards; only the control plane
holding a shard's advisory lock evaluates it (see :mod:`leases`), loading the shard's stored
alerts when it takes it over, so a restart or a fail-over neither re-fires nor forgets.

Transitions are written to the history and handed to the listeners (notifications) after the
pass's transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg

from control_plane.config import AlertingConfig
from control_plane.ingest.windows import Point, SeriesRef
from control_plane.query.matchers import Matcher
from control_plane.rules.evaluator import SeriesSource, evaluate
from control_plane.rules.health import RuleHealthBook
from control_plane.rules.leases import ShardLeases, shard_of
from control_plane.rules.metrics import AlertingMetrics
from control_plane.rules.model import Rule
from control_plane.rules.ruleset import RuleSet
from control_plane.rules.state import Alert, AlertState, Transition, advance
from control_plane.rules.store import AlertStore

Listener = Callable[[Sequence[Transition]], Awaitable[None] | None]


class ShardSource:
    """The windows seen through one shard: only series of the shard's agents."""

    def __init__(self, source: SeriesSource, shard: int, shards: int) -> None:
        self._source = source
        self._shard = shard
        self._shards = shards

    def select(self, name: str | None, matchers: Sequence[Matcher] = ()) -> list[SeriesRef]:
        return [
            ref
            for ref in self._source.select(name, matchers)
            if shard_of(ref.agent_id, self._shards) == self._shard
        ]

    def points(self, series_id: int, start: float, end: float) -> list[Point]:
        return self._source.points(series_id, start, end)


class RuleEngine:
    def __init__(
        self,
        pool: asyncpg.Pool,
        source: SeriesSource,
        cfg: AlertingConfig,
        *,
        clock: Callable[[], float] = time.time,
        metrics: AlertingMetrics | None = None,
        background: bool = True,
        log: logging.Logger | None = None,
    ) -> None:
        # Without the background loop only evaluate_once() evaluates (timeline tests).
        self._background = background
        self._cfg = cfg
        self.metrics = metrics or AlertingMetrics()
        self._source = source
        self._clock = clock
        self._log = log or logging.getLogger("control_plane.rules")
        self.store = AlertStore(pool)
        self.ruleset = RuleSet(self.store, cfg.rules_dir, log=self._log)
        self.leases = ShardLeases(pool, cfg.shards, log=self._log)
        self.listeners: list[Listener] = []
        # Each rule's last evaluation: ok, or the error it raised (shown by the rules API).
        self.health = RuleHealthBook(self.metrics, self._log)
        # shard -> rule -> fingerprint -> alert; a shard is here only while its lock is held.
        self._alerts: dict[int, dict[str, dict[str, Alert]]] = {}
        # (shard, rule, fingerprint) -> (what must be stored at once, when last stored)
        self._stored: dict[tuple[int, str, str], tuple[Any, float]] = {}
        self._started = 0.0
        self._last_reload = 0.0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        # Awaited before the first background pass (the windows' back-fill: ingest/backfill.py).
        self.gate: Callable[[], Awaitable[object]] | None = None

    async def __aenter__(self) -> RuleEngine:
        await self.ruleset.load()
        self._started = self._clock()
        self._last_reload = self._started
        if self._background:
            self._task = asyncio.create_task(self._run(), name="rule-engine")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.leases.close()
        self._alerts.clear()

    @property
    def rules(self) -> dict[str, Rule]:
        return dict(self.ruleset.rules)

    def wake(self) -> None:
        """New samples were committed: run a pass soon."""
        self._wake.set()

    async def reload(self) -> None:
        """Re-read the rules now (after an API change in this process)."""
        async with self._lock:
            await self._reload(self._clock())

    async def evaluate_once(self) -> list[Transition]:
        """One pass over every held shard; returns the transitions it recorded."""
        async with self._lock:
            started = time.perf_counter()
            try:
                return await self._pass(self._clock())
            finally:
                self.metrics.evaluation_duration.observe(time.perf_counter() - started)

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        if self.gate is not None:
            await self.gate()
        last = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._cfg.eval_interval_s)
            gap = self._cfg.min_eval_interval_s - (time.monotonic() - last)
            if gap > 0:
                await asyncio.sleep(gap)
            self._wake.clear()
            last = time.monotonic()
            try:
                await self.evaluate_once()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                self._log.warning("rule evaluation pass failed; retrying: %s", exc)
            except Exception:  # pragma: no cover - a bug; keep evaluating the other passes
                self._log.exception("rule evaluation pass failed")

    async def _pass(self, now: float) -> list[Transition]:
        self.passes += 1
        if now - self._last_reload >= self._cfg.rules_reload_s:
            await self._reload(now)
        held = await self.leases.refresh()
        for shard in list(self._alerts):
            if shard not in held:
                del self._alerts[shard]
                self._forget_stored(shard)
        rules = self.ruleset.rules
        warm = now - self._started >= self._cfg.warmup_s
        recorded: list[Transition] = []
        for shard in sorted(held):
            if shard not in self._alerts:
                # Taken over (or first pass): continue from the stored alerts, without those
                # of rules deleted meanwhile.
                await self.store.drop_rules_except(shard, list(rules), now)
                self._alerts[shard] = await self.store.load_alerts(shard)
            recorded.extend(await self._evaluate_shard(shard, rules, now, warm=warm))
        self._observe(held)
        if recorded:
            await self._tell(recorded)
        return recorded

    def _observe(self, held: frozenset[int]) -> None:
        self.metrics.shards_held.set(len(held))
        active = self.active_alerts()
        for state in (AlertState.PENDING, AlertState.FIRING):
            self.metrics.alerts.labels(state.value).set(sum(a.state is state for a in active))

    async def _evaluate_shard(
        self, shard: int, rules: Mapping[str, Rule], now: float, *, warm: bool
    ) -> list[Transition]:
        alerts = self._alerts[shard]
        source: SeriesSource = self._source
        if self._cfg.shards > 1:
            source = ShardSource(self._source, shard, self._cfg.shards)
        changed: list[Alert] = []
        removed: list[tuple[str, str]] = []
        transitions: list[Transition] = []
        updated: dict[str, dict[str, Alert]] = {}
        for name, rule in rules.items():
            current = alerts.get(name, {})
            if rule.uses_absent and not warm:
                continue  # the windows are still filling: everything would look absent
            try:
                result = evaluate(rule.expr, source, now, lookback_s=self._cfg.lookback_s)
                assert isinstance(result, list)
                step = advance(rule, current, result, now, may_clear=warm)
            except Exception as exc:  # whatever one rule raises, the others are evaluated
                self.health.failed(name, now, exc)
                continue
            self.health.ok(name, now)
            updated[name] = step.alerts
            transitions.extend(step.transitions)
            changed.extend(a for a in step.changed if self._must_store(shard, a, now))
            removed.extend((name, fp) for fp in step.removed)
        if not (changed or removed or transitions):
            alerts.update(updated)
            return []
        try:
            await self.store.save(shard, changed, removed, transitions)
        except BaseException:
            # Memory and database may now disagree: re-read the shard next pass.
            self._alerts.pop(shard, None)
            self._forget_stored(shard)
            raise
        alerts.update({k: v for k, v in updated.items()})
        for name in [n for n, v in alerts.items() if not v]:
            del alerts[name]
        for a in changed:
            self._stored[(shard, a.rule, a.fingerprint)] = (_significant(a), now)
        for rule_name, fp in removed:
            self._stored.pop((shard, rule_name, fp), None)
        return transitions

    def _must_store(self, shard: int, alert: Alert, now: float) -> bool:
        seen = self._stored.get((shard, alert.rule, alert.fingerprint))
        if seen is None or seen[0] != _significant(alert):
            return True
        return now - seen[1] >= self._cfg.persist_interval_s

    def _forget_stored(self, shard: int) -> None:
        for key in [k for k in self._stored if k[0] == shard]:
            del self._stored[key]

    async def _reload(self, now: float) -> None:
        self._last_reload = now
        if not await self.ruleset.refresh():
            return
        names = list(self.ruleset.rules)
        self.health.keep_only(names)
        for shard, alerts in self._alerts.items():
            gone = [n for n in alerts if n not in self.ruleset.rules]
            if gone:
                await self.store.drop_rules_except(shard, names, now)
                for n in gone:
                    del alerts[n]
                self._forget_stored(shard)

    async def _tell(self, transitions: list[Transition]) -> None:
        for listener in self.listeners:
            try:
                result = listener(transitions)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._log.exception("an alert listener failed")

    def active_alerts(self) -> list[Alert]:
        """Pending and firing alerts of the shards this process evaluates."""
        return [
            a
            for shard in self._alerts.values()
            for by_fp in shard.values()
            for a in by_fp.values()
            if a.state in (AlertState.PENDING, AlertState.FIRING)
        ]


def _significant(a: Alert) -> tuple[Any, ...]:
    """What a restart needs exactly; the value and last-seen time may lag a little."""
    return (a.state, a.flapping, a.flips, a.active_at, a.fired_at, a.resolved_at)
