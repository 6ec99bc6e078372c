"""The shared retry stage's arithmetic: jittered backoff and ``Retry-After``; pure."""

from __future__ import annotations

import email.utils
import random


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, capped, with jitter in
    [50 %, 100 %] so that many failed sends do not retry in lockstep."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return ceiling * rng.uniform(0.5, 1.0)


def parse_retry_after(value: str | None, now: float, *, default_s: float = 1.0) -> float:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return default_s
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default_s
    return max(0.0, when.timestamp() - now)
