"""Range functions over one series' points; pure. Semantics follow Prometheus
(``promql/functions.go``), including ``extrapolatedRate`` for ``rate`` and ``increase``."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence

Point = tuple[float, float]


def extrapolated_rate(
    points: Sequence[Point],
    range_start: float,
    range_end: float,
    *,
    is_rate: bool,
    is_counter: bool = True,
    resets: Sequence[float] | None = None,
) -> float | None:
    """Prometheus' ``extrapolatedRate`` for counters: resets add the value before the reset
    (``resets``: those values, when the caller knows them);
    the delta is extrapolated towards the range boundaries when the first/last samples are
    within 1.1 average intervals of them (else by half an interval), and never below zero.
    None when fewer than two points (no result, as in Prometheus)."""
    if len(points) < 2:
        return None
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    result = last_v - first_v
    if is_counter and resets is not None:  # the caller found them (once for many windows)
        for before in resets:
            result += before
    elif is_counter:  # `delta` reads a gauge: no resets, and it may go below zero
        previous = first_v
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
    if is_counter and result > 0 and first_v >= 0:
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


def variance(values: Sequence[float]) -> float:
    """The population variance by Welford's method with Kahan-compensated sums, as
    Prometheus's ``stdvar`` and ``stdvar_over_time``."""
    count = 0.0
    avg = c_avg = aux = c_aux = 0.0
    for v in values:
        count += 1
        delta = v - (avg + c_avg)
        avg, c_avg = kahan_inc(delta / count, avg, c_avg)
        aux, c_aux = kahan_inc(delta * (v - (avg + c_avg)), aux, c_aux)
    return (aux + c_aux) / count


def _div(a: float, b: float) -> float:
    """IEEE division (Go's): x/0 is an infinity or NaN rather than an exception."""
    if b == 0:
        return (
            math.nan
            if a == 0 or math.isnan(a)
            else math.copysign(math.inf, a) * math.copysign(1.0, b)
        )
    return a / b


def _ms(t: float) -> int:
    # Prometheus keeps time in integer milliseconds; regressions use those exact offsets.
    return round(t * 1000)


def linear_regression(points: Sequence[Point], intercept_t: float) -> tuple[float, float]:
    """Prometheus's ``linearRegression``: least-squares slope (per second) and the value at
    ``intercept_t``; a constant series has slope 0 (NaN when the constant is infinite)."""
    first = points[0][1]
    if all(v == first for _, v in points):
        return (math.nan, math.nan) if math.isinf(first) else (0.0, first)
    n = 0.0
    sum_x = c_x = sum_y = c_y = sum_xy = c_xy = sum_x2 = c_x2 = 0.0
    origin = _ms(intercept_t)
    for t, v in points:
        n += 1
        x = (_ms(t) - origin) / 1e3
        sum_x, c_x = kahan_inc(x, sum_x, c_x)
        sum_y, c_y = kahan_inc(v, sum_y, c_y)
        sum_xy, c_xy = kahan_inc(x * v, sum_xy, c_xy)
        sum_x2, c_x2 = kahan_inc(x * x, sum_x2, c_x2)
    sum_x += c_x
    sum_y += c_y
    sum_xy += c_xy
    sum_x2 += c_x2
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = _div(cov_xy, var_x)
    return slope, sum_y / n - slope * sum_x / n


def instant_change(points: Sequence[Point], *, is_rate: bool) -> float | None:
    """``irate``/``idelta``: from the last two points (a drop is a counter reset for irate)."""
    if len(points) < 2:
        return None
    (prev_t, prev_v), (last_t, last_v) = points[-2], points[-1]
    value = last_v if is_rate and last_v < prev_v else last_v - prev_v
    interval = _ms(last_t) - _ms(prev_t)
    if interval == 0:
        return None
    return value / (interval / 1000) if is_rate else value


def changes(values: Sequence[float]) -> float:
    n = 0
    for prev, cur in itertools.pairwise(values):
        if cur != prev and not (math.isnan(cur) and math.isnan(prev)):
            n += 1
    return float(n)


def resets(values: Sequence[float]) -> float:
    return float(sum(1 for prev, cur in itertools.pairwise(values) if cur < prev))


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = (n - 1) / 2
    lower = ordered[math.floor(mid)]
    upper = ordered[math.ceil(mid)]
    return lower + (upper - lower) * (mid - math.floor(mid))


def median_absolute_deviation(values: Sequence[float]) -> float:
    """``mad_over_time``: the median of the distances to the median."""
    if any(math.isnan(v) for v in values):
        return math.nan
    centre = _median(values)
    return _median([abs(v - centre) for v in values])


def double_exponential_smoothing(values: Sequence[float], sf: float, tf: float) -> float | None:
    """Prometheus's ``double_exponential_smoothing`` (Holt's linear method): the smoothed
    value after the last point; None below two points."""
    if len(values) < 2:
        return None
    s0, s1 = 0.0, values[0]
    trend = values[1] - values[0]
    for i in range(1, len(values)):
        if i > 1:
            trend = tf * (s1 - s0) + (1 - tf) * trend
        s0, s1 = s1, sf * values[i] + (1 - sf) * (s1 + trend)
    return s1


def timestamp_of(points: Sequence[Point], which: str) -> float:
    """``ts_of_{first,last,min,max}_over_time``: when that point was taken (the latest on
    ties; NaN values are passed over unless all are NaN)."""
    if which == "first":
        return points[0][0]
    if which == "last":
        return points[-1][0]
    best_t, best_v = points[0]
    for t, v in points[1:]:
        better = v <= best_v if which == "min" else v >= best_v
        if better or math.isnan(best_v):
            best_t, best_v = t, v
    return best_t


# The `*_over_time` family and the other functions of a range's values alone.
OVER_TIME: dict[str, Callable[[Sequence[float]], float]] = {
    "avg_over_time": mean,
    "min_over_time": nan_aware_min,
    "max_over_time": nan_aware_max,
    "sum_over_time": kahan_sum,
    "count_over_time": lambda values: float(len(values)),
    "stddev_over_time": lambda values: math.sqrt(variance(values)),
    "stdvar_over_time": variance,
    "last_over_time": lambda values: values[-1],
    "first_over_time": lambda values: values[0],
    "present_over_time": lambda values: 1.0,
    "mad_over_time": median_absolute_deviation,
    "changes": changes,
    "resets": resets,
}
