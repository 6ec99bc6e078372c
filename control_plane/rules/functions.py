"""Range functions over one series' points; pure. Semantics follow Prometheus
(``promql/functions.go``), including ``extrapolatedRate`` for ``rate`` and ``increase``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

Point = tuple[float, float]


def extrapolated_rate(
    points: Sequence[Point], range_start: float, range_end: float, *, is_rate: bool
) -> float | None:
    """Prometheus' ``extrapolatedRate`` for counters: resets add the value before the reset;
    the delta is extrapolated towards the range boundaries when the first/last samples are
    within 1.1 average intervals of them (else by half an interval), and never below zero.
    None when fewer than two points (no result, as in Prometheus)."""
    if len(points) < 2:
        return None
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    result = last_v - first_v
    previous = 0.0
    for _, v in points:
        if v < previous:  # a counter reset
            result += previous
        previous = v
    duration_to_start = first_t - range_start
    duration_to_end = range_end - last_t
    sampled = last_t - first_t
    average_step = sampled / (len(points) - 1)
    threshold = average_step * 1.1
    extrapolate_to = sampled
    if duration_to_start >= threshold:
        duration_to_start = average_step / 2
    if result > 0 and first_v >= 0:
        # A counter cannot go negative: do not extrapolate past its zero point.
        duration_to_zero = sampled * (first_v / result)
        duration_to_start = min(duration_to_start, duration_to_zero)
    extrapolate_to += duration_to_start
    if duration_to_end >= threshold:
        duration_to_end = average_step / 2
    extrapolate_to += duration_to_end
    factor = extrapolate_to / sampled
    if is_rate:
        factor /= range_end - range_start
    return result * factor


def kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    """Prometheus' ``kahanSumInc``: Kahan-Babuska-Neumaier summation, one term at a time.
    Returns the new sum and compensation; the result is ``sum + c``. Unlike ``math.fsum`` it
    never raises: +Inf and -Inf make NaN, an overflow makes an infinity."""
    t = total + inc
    if math.isinf(t):
        c = 0.0
    elif abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def kahan_sum(values: Iterable[float]) -> float:
    total = c = 0.0
    for v in values:
        total, c = kahan_inc(v, total, c)
    return total if math.isinf(total) else total + c


def mean(values: Sequence[float]) -> float:
    """Prometheus' ``avg`` and ``avg_over_time``: the Kahan sum over the count while that sum
    stays finite, then an incremental mean (so values near 1e308 average without overflow)."""
    total, c = values[0], 0.0
    avg = 0.0
    incremental = False
    for i, v in enumerate(values[1:], start=2):
        count = float(i)
        if not incremental:
            new_total, new_c = kahan_inc(v, total, c)
            if not math.isinf(new_total):
                total, c = new_total, new_c
                continue
            incremental = True
            avg = total / (count - 1)
            c /= count - 1
        q = (count - 1) / count
        avg, c = kahan_inc(v / count, q * avg, q * c)
    if incremental:
        return avg + c
    n = float(len(values))
    return total / n + c / n


def nan_aware_min(values: Sequence[float]) -> float:
    """Prometheus' ``min``/``min_over_time``: NaN only when every value is NaN."""
    real = [v for v in values if not math.isnan(v)]
    return min(real) if real else math.nan


def nan_aware_max(values: Sequence[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return max(real) if real else math.nan


OVER_TIME: dict[str, Callable[[Sequence[float]], float]] = {
    "avg_over_time": mean,
    "min_over_time": nan_aware_min,
    "max_over_time": nan_aware_max,
    "sum_over_time": kahan_sum,
    "count_over_time": lambda values: float(len(values)),
}


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' ``bucketQuantile``: the ``q`` quantile of cumulative ``(le, count)`` buckets,
    interpolating linearly within the bucket it falls in. NaN without a ``+Inf`` bucket."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]) or ordered[-1][0] < 0:
        return math.nan
    merged: list[list[float]] = []
    for le, count in ordered:  # coalesce equal bounds
        if merged and merged[-1][0] == le:
            merged[-1][1] += count
        else:
            merged.append([le, count])
    highest = 0.0
    for bucket in merged:  # counts are cumulative: repair any dip (scrape races)
        highest = max(highest, bucket[1])
        bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)
