"""Capped exponential backoff with jitter, for retrying the control plane."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays of ``base * 2**n`` capped at ``cap``, each drawn from the upper half of that
    range ("equal jitter"): a fleet of agents recovering from the same outage spreads out,
    yet no agent retries sooner than half the nominal delay."""

    def __init__(
        self, *, base_s: float = 0.5, cap_s: float = 30.0, rng: Callable[[], float] = random.random
    ) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("need 0 < base_s <= cap_s")
        self._base = base_s
        self._cap = cap_s
        self._rng = rng
        self.attempts = 0

    def next_delay(self) -> float:
        ceiling = min(self._cap, self._base * (1 << min(self.attempts, 32)))
        self.attempts += 1
        return ceiling / 2 + self._rng() * ceiling / 2

    def reset(self) -> None:
        self.attempts = 0
