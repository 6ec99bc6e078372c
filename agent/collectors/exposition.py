"""Parse the Prometheus text exposition format into samples, fast in the steady state.

prometheus_client's parser costs about 13 us per sample, most of the agent's 15 us per series
budget. The fast path here splits each line once and caches the parsed series part (name and
labels) between scrapes, since an app exposes the same series every time: about 0.7 us per
sample. Any line it does not fully understand sends the whole text to prometheus_client's parser,
which stays the reference for odd input (and raises ``ValueError`` for invalid input).

Sample names are kept exactly as exposed (the reference parser appends ``_total`` to counters
that lack it; the fast path, like the Prometheus server, does not). Samples the control plane
would refuse (see docs/wire-format.md, "Validation and limits") are left out and counted, since
one of them would get the whole report refused.
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from agent.collectors.base import Sample
from agent.wire import series_problem

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SERIES = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[ \t]*(?:\{(.*)\})?")
_PAIR = r'[ \t]*[a-zA-Z_][a-zA-Z0-9_]*[ \t]*=[ \t]*"(?:[^"\\\n]|\\.)*"[ \t]*'
_LABELS = re.compile(rf"(?:{_PAIR}(?:,{_PAIR})*,?)?[ \t]*")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"')
_ESCAPE = re.compile(r'\\[\\n"]')
_UNESCAPED = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}

Series = tuple[str, dict[str, str]]
# A series the control plane would refuse (docs/wire-format.md, "Validation and limits"): one
# such sample would make it refuse the whole report, so the sample is left out and counted.
_REFUSED: Series = ("", {})
MAX_NAME_LEN = 256
MAX_LABELS = 64
MAX_LABEL_NAME_LEN = 128
MAX_LABEL_VALUE_LEN = 4096
# The control plane refuses timestamps more than 600 s ahead of its clock; keep a margin.
MAX_FUTURE_S = 300.0


class ExpositionParser:
    """Stateful only in its cache of parsed series; the samples' label dicts are shared with it
    and must not be mutated. ``refused`` counts the samples the last parse left out."""

    def __init__(self) -> None:
        self._series: dict[str, Series] = {}
        self.refused = 0

    def parse(self, text: str, *, now: float) -> list[Sample]:
        """The samples of ``text`` (raises ``ValueError`` if it is not the text format)."""
        try:
            samples, timestamped = self._parse_fast(text)
        except ValueError:
            samples, self.refused = parse_reference(text)
            timestamped = True
        if timestamped:  # rare: most apps leave timestamps to the scraper
            latest = now + MAX_FUTURE_S
            kept = [s for s in samples if s.ts is None or 0 < s.ts <= latest]
            self.refused += len(samples) - len(kept)
            samples = kept
        return samples

    def _parse_fast(self, text: str) -> tuple[list[Sample], bool]:
        out: list[Sample] = []
        cache = self._series
        # Rebuilt every scrape, so series the app stopped exposing do not accumulate.
        seen: dict[str, Series] = {}
        refused = 0
        timestamped = False
        for line in text.split("\n"):
            if not line or line[0] == "#":
                continue
            # The steady state: a series seen in the last scrape, one space, a plain value. Any
            # other line (new series, timestamps, other spacing) takes the careful path below.
            head, _, tail = line.rpartition(" ")
            series = cache.get(head)
            if series is not None and "_" not in tail:
                try:
                    value = float(tail)
                except ValueError:
                    pass
                else:
                    seen[head] = series
                    if series is _REFUSED:
                        refused += 1
                    else:
                        out.append(Sample(series[0], series[1], value))
                    continue
            line = line.strip()
            if not line or line[0] == "#":
                continue
            brace = line.rfind("}")
            if brace >= 0:
                key = line[: brace + 1]
                rest = line[brace + 1 :].split()
            else:
                rest = line.split()
                key = rest.pop(0)
            series = seen.get(key)
            if series is None:
                series = seen[key] = cache.get(key) or _parse_series(key)
            if series is _REFUSED:
                refused += 1
            elif len(rest) == 1:
                out.append(Sample(series[0], series[1], _value(rest[0])))
            elif len(rest) == 2:
                out.append(Sample(series[0], series[1], _value(rest[0]), _value(rest[1]) / 1000))
                timestamped = True
            else:
                raise ValueError(f"cannot parse line: {line[:200]!r}")
        self._series = seen
        self.refused = refused
        return out, timestamped


def parse_reference(text: str) -> tuple[list[Sample], int]:
    """prometheus_client's parser: the samples the control plane would accept, and how many
    others were left out."""
    out: list[Sample] = []
    refused = 0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if _acceptable(s.name, s.labels):
                ts = float(s.timestamp) if isinstance(s.timestamp, float | int) else None
                out.append(Sample(s.name, dict(s.labels), float(s.value), ts))
            else:
                refused += 1
    return out, refused


def acceptable_series(name: str, labels: dict[str, str]) -> bool:
    """Would the control plane accept a sample of this name and label set?"""
    return _acceptable(name, labels)


def _acceptable(name: str, labels: dict[str, str]) -> bool:
    # The control plane's own bounds (NUL, the label set's stored size included): agent/wire.py.
    return series_problem(name, labels) is None


def _parse_series(key: str) -> Series:
    m = _SERIES.fullmatch(key)
    if m is None:
        raise ValueError(f"cannot parse series {key[:200]!r}")
    name, raw = m.groups()
    if not raw:
        return (name, {}) if len(name) <= MAX_NAME_LEN else _REFUSED
    if _LABELS.fullmatch(raw) is None:
        raise ValueError(f"cannot parse labels {raw[:200]!r}")
    labels: dict[str, str] = {}
    for label, value in _LABEL.findall(raw):
        if label in labels or label == "__name__":
            raise ValueError(f"label {label!r} repeated or reserved")
        labels[label] = _ESCAPE.sub(_unescape, value) if "\\" in value else value
    return (name, labels) if _acceptable(name, labels) else _REFUSED


def _unescape(m: re.Match[str]) -> str:
    return _UNESCAPED[m.group(0)]


def _value(text: str) -> float:
    # float() also takes "1_000" and " 1"; the exposition format does not.
    if "_" in text:
        raise ValueError(f"invalid value {text!r}")
    return float(text)
