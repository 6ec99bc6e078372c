"""What the parser knows of PromQL's functions and aggregations: argument and result types;
pure. The evaluator implements every name here (``Prometheus promql/parser/functions.go``,
native-histogram and experimental functions left out)."""

from __future__ import annotations

from dataclasses import dataclass

from control_plane.rules.ast import ValueType

S, V, M, STR = ValueType.SCALAR, ValueType.VECTOR, ValueType.MATRIX, ValueType.STRING


@dataclass(frozen=True, slots=True)
class Signature:
    args: tuple[ValueType, ...]
    returns: ValueType = ValueType.VECTOR
    # How many trailing arguments may be left out (`round(v)`, `hour()`).
    optional: int = 0
    # The last argument may repeat (`label_join(v, dst, sep, src...)`).
    variadic: bool = False

    @property
    def min_args(self) -> int:
        return len(self.args) - self.optional - (1 if self.variadic else 0)


_ELEMENTWISE = (
    "abs",
    "ceil",
    "floor",
    "exp",
    "sqrt",
    "ln",
    "log2",
    "log10",
    "sgn",
    "deg",
    "rad",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
)
_OVER_TIME = (
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "present_over_time",
    "absent_over_time",
    "changes",
    "resets",
    "deriv",
    "delta",
    "idelta",
    "irate",
    "rate",
    "increase",
)
DATE_FUNCTIONS = (
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
)

FUNCTIONS: dict[str, Signature] = {
    **{name: Signature((V,)) for name in _ELEMENTWISE},
    **{name: Signature((M,)) for name in _OVER_TIME},
    **{name: Signature((V,), optional=1) for name in DATE_FUNCTIONS},
    "absent": Signature((V,)),
    "histogram_quantile": Signature((S, V)),
    "quantile_over_time": Signature((S, M)),
    "predict_linear": Signature((M, S)),
    "round": Signature((V, S), optional=1),
    "clamp": Signature((V, S, S)),
    "clamp_min": Signature((V, S)),
    "clamp_max": Signature((V, S)),
    "label_replace": Signature((V, STR, STR, STR, STR)),
    "label_join": Signature((V, STR, STR, STR), variadic=True),
    "sort": Signature((V,)),
    "sort_desc": Signature((V,)),
    "timestamp": Signature((V,)),
    "vector": Signature((S,)),
    "scalar": Signature((V,), returns=S),
    "time": Signature((), returns=S),
    # The query's bounds and step (an instant query's start and end are its time, its step 0).
    "start": Signature((), returns=S),
    "end": Signature((), returns=S),
    "range": Signature((), returns=S),
    "step": Signature((), returns=S),
    "pi": Signature((), returns=S),
    # Experimental in Prometheus (--enable-feature=promql-experimental-functions), but in its
    # stable test files and cheap: kept.
    "first_over_time": Signature((M,)),
    "ts_of_first_over_time": Signature((M,)),
    "ts_of_last_over_time": Signature((M,)),
    "ts_of_min_over_time": Signature((M,)),
    "ts_of_max_over_time": Signature((M,)),
    "mad_over_time": Signature((M,)),
    "double_exponential_smoothing": Signature((M, S, S)),
    "sort_by_label": Signature((V, STR), optional=1, variadic=True),
    "sort_by_label_desc": Signature((V, STR), optional=1, variadic=True),
}
# Experimental in Prometheus: queries may use them, rules may not (an exported rule file
# would not load in Prometheus without its feature flags).
EXPERIMENTAL = frozenset(
    {"first_over_time", "mad_over_time", "double_exponential_smoothing"}
    | {"ts_of_first_over_time", "ts_of_last_over_time", "ts_of_min_over_time"}
    | {"ts_of_max_over_time", "sort_by_label", "sort_by_label_desc"}
    | {"start", "end", "range", "step"}
)
# Functions that keep the metric name of the series they read.
KEEP_NAME = frozenset({"last_over_time", "first_over_time"})

AGGREGATIONS = frozenset(
    {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"}
    | {"topk", "bottomk", "quantile", "count_values"}
)
# The parameter an aggregation takes before its vector (`topk(3, x)`).
AGGREGATION_PARAMS: dict[str, ValueType] = {
    "topk": S,
    "bottomk": S,
    "quantile": S,
    "count_values": STR,
}
