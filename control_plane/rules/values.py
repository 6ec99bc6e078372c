"""What evaluation yields: samples, range series and values; pure. A sample may carry its
metric name to the end of the evaluation with a mark that it goes then (Prometheus's delayed
name removal): :func:`finalize` removes it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from control_plane.rules.functions import Point

NAME_LABEL = "__name__"

Labels = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Labels
    value: float
    # The metric name is to go (a function or arithmetic read the sample) but stays until the
    # result is complete, so `label_replace` can still read it and two series that differ only
    # by name do not collide before an aggregation (Prometheus's delayed name removal).
    drop_name: bool = False


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series of a range vector (a query may return one: ``x[5m]``)."""

    labels: Labels
    points: list[Point]


Vector = list[Sample]
Matrix = tuple[RangeSeries, ...]
Value = float | str | Vector | Matrix


class EvaluationError(RuntimeError):
    """An expression that parsed cannot be evaluated on this data (duplicate label sets on
    one side of a one-to-one match): a property of the data, reported per evaluation."""


def drop_name(labels: Labels) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != NAME_LABEL}


def dropped(labels: Labels, value: float) -> Sample:
    """A sample whose metric name goes when the result is complete (:func:`finalize`)."""
    return Sample(labels, value, drop_name=NAME_LABEL in labels)


def finalize(value: Value) -> Value:
    """The result as a caller sees it: names marked for removal removed."""
    if not isinstance(value, list) or not any(s.drop_name for s in value):
        return value
    return unique([Sample(drop_name(s.labels), s.value) if s.drop_name else s for s in value])


def as_vector(value: Value) -> Vector:
    assert isinstance(value, list)
    return value


def unique(vec: Vector) -> Vector:
    """Prometheus refuses a result with two samples of one label set (``rate`` over
    ``{__name__=~"a|b"}`` whose series differ only by name, a label_replace that merges)."""
    seen = set()
    for s in vec:
        key = frozenset(s.labels.items())
        if key in seen:
            raise EvaluationError("vector cannot contain metrics with the same labelset")
        seen.add(key)
    return vec


def sorted_by_value(vec: Vector, *, descending: bool) -> Vector:
    """``sort``/``sort_desc``: by value, NaN last either way."""
    sign = -1.0 if descending else 1.0
    return sorted(
        vec, key=lambda s: (math.isnan(s.value), sign * s.value if s.value == s.value else 0.0)
    )
