"""Resilience primitives shared by every dependency client (cache L2, queues, HTTP peers)."""

from haetae.resilience.breaker import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
)

__all__ = ["BreakerConfig", "BreakerState", "CircuitBreaker", "CircuitOpenError"]
