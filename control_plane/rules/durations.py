"""Prometheus durations (``90s``, ``5m``, ``1h30m``, ``250ms``) to seconds and back; pure."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_UNITS["y"] = 365 * _UNITS["d"]
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")
# Largest unit first, as Prometheus prints them.
_FORMAT_ORDER = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError when it is not a Prometheus duration."""
    if not DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 5m, 1h30m)")
    return sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))


def coerce_duration(value: object) -> float:
    """A duration from config or JSON: a duration string or a number of seconds (>= 0)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a string like 5m or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = parse_duration(value.strip())
    else:
        raise ValueError("a duration is a string like 5m or a number of seconds")
    if not seconds >= 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """``3900`` -> ``1h5m``; ``0`` -> ``0s``; sub-second parts in ``ms``."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    whole, ms = divmod(millis, 1000)
    out = []
    for unit, size in _FORMAT_ORDER:
        n, whole = divmod(whole, size)
        if n:
            out.append(f"{n}{unit}")
    if ms:
        out.append(f"{ms}ms")
    return "".join(out)
