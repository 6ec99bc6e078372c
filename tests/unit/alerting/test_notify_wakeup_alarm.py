"""The wake-up parts that need no database: payload parsing and the alarm's schedule."""

from __future__ import annotations

import asyncio

from control_plane.alerting.wakeups import Alarm, Wakeup


def test_wakeup_payloads() -> None:
    w = Wakeup.parse('{"k": "outbox", "d": "ops/webhook/0", "at": 1800000000.5}')
    assert w is not None
    assert (w.kind, w.destination, w.at) == ("outbox", "ops/webhook/0", 1800000000.5)
    w = Wakeup.parse('{"k": "group"}')
    assert w is not None and w.at is None and w.destination is None
    assert Wakeup.parse("not json") is None
    assert Wakeup.parse('{"d": "x"}') is None
    assert Wakeup.parse("[1, 2]") is None


async def test_alarm_rings_at_each_time_earliest_first() -> None:
    loop = asyncio.get_running_loop()
    rings: list[float] = []
    alarm = Alarm(lambda: rings.append(loop.time()))
    start = loop.time()
    alarm.after(0.2)
    alarm.after(0.05)
    alarm.after(0.051)  # within the slack of the armed time: one ring
    alarm.after(0)  # due now: rings at once
    assert len(rings) == 1
    await asyncio.sleep(0.35)
    assert len(rings) == 3
    assert 0.05 <= rings[1] - start < 0.15
    assert 0.2 <= rings[2] - start < 0.3
    assert len(alarm) == 0


async def test_alarm_cancel() -> None:
    rings: list[int] = []
    alarm = Alarm(lambda: rings.append(1))
    alarm.after(0.05)
    alarm.cancel()
    await asyncio.sleep(0.1)
    assert rings == []
