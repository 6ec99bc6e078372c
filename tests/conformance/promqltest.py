"""A reader and runner for Prometheus's promqltest files (``promql/promqltest/README.md``).

Reads ``load``/``clear``/``eval`` commands into :class:`Case` values, loads each case's series
into real ingest windows, evaluates the expression with our parser and evaluator, and compares
the result as Prometheus's runner does (labels exactly, values within a relative 1e-6, NaN equal
to NaN). Cases using features the engine does not claim are skipped, with the feature named
(:func:`unsupported_feature`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.rules.errors import RuleError
from control_plane.rules.evaluator import EvaluationError, Sample, evaluate, evaluate_range
from control_plane.rules.lexer import Tok, Token, tokenize
from control_plane.rules.parser import AGGREGATIONS, FUNCTIONS, parse_query
from control_plane.rules.printer import format_expr
from control_plane.rules.staleness import STALE_NAN

_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
# (no hex: in series values `0x10` is 0 repeated)
_NUMBER = r"[+-]?(?:Inf|NaN|inf|nan|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
# `_`, `_x3`, `stale`, `5`, `5x3`, `1+2x3`, `1-2x3` (promtool's expanding notation)
_ITEM = re.compile(
    rf"(?P<blank>_)(?:x(?P<bn>\d+))?|(?P<stale>stale)|(?P<v>{_NUMBER})"
    rf"(?:(?P<d>[+-](?:Inf|NaN|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+))?x(?P<n>\d+))?"
)
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|(?=\}))')
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_EVAL = re.compile(
    r"eval(?:_(?P<old>fail|warn|info|ordered))?\s+"
    r"(?:instant\s+at\s+(?P<at>\S+)|range\s+from\s+(?P<start>\S+)\s+to\s+(?P<end>\S+)"
    r"\s+step\s+(?P<step>\S+))\s+(?P<expr>.+)"
)
_MATCH_OPS = ("=", "!=", "=~", "!~")
_RANGE_VECTOR = re.compile(
    r"expect range vector from (?P<start>\S+) to (?P<end>\S+) step (?P<step>\S+)"
)
# Words that may stand before "(" without being a function.
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool"})
_KEYWORDS |= {"and", "or", "unless", "offset"}
# Prometheus's aggregation operators (case-insensitive) beyond the ones the engine has
# (experimental ones).
_OTHER_AGGREGATIONS = frozenset({"limitk", "limit_ratio"})
# Keywords of PromQL features the engine does not have.
_UNSUPPORTED_WORDS = {
    "anchored": "anchored/smoothed ranges",
    "smoothed": "anchored/smoothed ranges",
    "fill": "fill modifiers",
    "fill_left": "fill modifiers",
    "fill_right": "fill modifiers",
}

Labels = dict[str, str]


@dataclass
class Series:
    name: str
    labels: Labels
    points: list[tuple[int, float | None]]  # (ms, value); None is a stale marker
    histogram: bool = False


@dataclass
class Case:
    file: str
    line: int
    expr: str
    start_ms: int
    end_ms: int
    step_ms: int
    range_query: bool
    series: list[Series]
    expect_fail: bool = False
    ordered: bool = False
    # `expect string "x"`: the string; `expect range vector from A to B step S`: (A, B, S) ms
    string: str | None = None
    matrix_ms: tuple[int, int, int] | None = None
    unreadable: bool = False
    scalar: float | None = None
    # labels (sorted items) -> values per step (None: no value at that step)
    expected: list[tuple[Labels, list[float | None]]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def parse_duration_ms(text: str) -> int:
    if text == "0":
        return 0
    if not re.fullmatch(r"(?:\d+(?:ms|s|m|h|d))+", text):
        raise ValueError(f"bad duration {text!r}")
    return sum(int(n) * _DURATION_MS[u] for n, u in _DURATION_PART.findall(text))


def parse_number(text: str) -> float:
    low = text.lower().lstrip("+-")
    if low in ("inf", "nan"):
        value = math.inf if low == "inf" else math.nan
        return -value if text.startswith("-") else value
    return float(text)


def expand_values(text: str) -> list[float | str | None]:
    """``0 1+2x2 _ stale`` -> [0, 1, 3, 5, None, "stale"] (None: omitted)."""
    out: list[float | str | None] = []
    for item in text.split():
        m = _ITEM.fullmatch(item)
        if m is None:
            raise ValueError(f"bad series value {item!r}")
        if m["blank"]:
            out.extend([None] * int(m["bn"] or 1))
        elif m["stale"]:
            out.append("stale")
        else:
            start = parse_number(m["v"])
            if m["n"] is None:
                out.append(start)
                continue
            delta = parse_number(m["d"]) if m["d"] else 0.0
            out.extend(start + delta * i for i in range(int(m["n"]) + 1))
    return out


def parse_series(line: str) -> tuple[Labels, str]:
    """``name{a="b"} rest`` -> ({"__name__": "name", "a": "b"}, "rest")."""
    labels: Labels = {}
    pos = 0
    if m := _METRIC.match(line):
        labels["__name__"] = m[0]
        pos = m.end()
    if line.startswith("{", pos):
        pos += 1
        while (m := _LABEL_PAIR.match(line, pos)) is not None:
            value = m[2]
            labels[m[1]] = value.encode().decode("unicode_escape") if "\\" in value else value
            pos = m.end()
        close = re.compile(r"\s*\}").match(line, pos)
        if close is None:
            raise ValueError(f"a series the runner cannot read: {line!r}")
        pos = close.end()
    return labels, line[pos:].strip()


def _string_literal(text: str) -> str:
    text = text.strip()
    if text[:1] == "`":
        return text[1:-1]
    return str(text[1:-1].encode().decode("unicode_escape"))


def read_file(path: Path) -> Iterator[Case]:
    lines = path.read_text(encoding="utf-8").splitlines()
    store: list[Series] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        block: list[str] = []
        while i < len(lines) and lines[i].strip() and lines[i][:1].isspace():
            if not lines[i].strip().startswith("#"):
                block.append(lines[i].strip())
            i += 1
        if line == "clear":
            store = []
        elif line.startswith("load"):
            step = parse_duration_ms(line.split()[1])
            store = store + [_load(row, step) for row in block]
            if line.startswith("load_with_nhcb"):  # classic buckets also read as native ones
                bases = {re.sub(r"_(bucket|count|sum)$", "", s.name) for s in store[-len(block) :]}
                store += [Series(base, {}, [], histogram=True) for base in sorted(bases)]
        elif line.startswith("eval"):
            yield _case(path.name, i - len(block) - 1, line, block, store)
        else:
            raise ValueError(f"{path.name}:{i}: unknown command {line!r}")


def _load(row: str, step_ms: int) -> Series:
    name = _METRIC.match(row)
    try:
        labels, values = parse_series(row)
        expanded = expand_values(values)
    except ValueError:  # native histograms ({{...}}), quoted names
        return Series(name[0] if name else "", {}, [], histogram=True)
    points: list[tuple[int, float | None]] = []
    for n, v in enumerate(expanded):
        if v is not None:
            points.append((n * step_ms, None if v == "stale" else float(v)))
    return Series(labels.pop("__name__", ""), labels, points)


def _case(file: str, line_no: int, line: str, block: list[str], store: list[Series]) -> Case:
    m = _EVAL.fullmatch(line)
    if m is None:
        raise ValueError(f"{file}:{line_no}: unreadable eval {line!r}")
    if m["at"] is not None:
        start = end = parse_duration_ms(m["at"])
        step, ranged = 1, False
    else:
        start, end = parse_duration_ms(m["start"]), parse_duration_ms(m["end"])
        step, ranged = parse_duration_ms(m["step"]), True
    case = Case(file, line_no, m["expr"].strip(), start, end, step, ranged, store)
    case.expect_fail = m["old"] == "fail"
    case.ordered = m["old"] == "ordered"
    for row in block:
        if row.startswith("expect "):
            what = row.split()[1]
            case.expect_fail |= what == "fail"
            case.ordered |= what == "ordered"
            if what == "string":
                case.string = _string_literal(row.split(None, 2)[2])
            elif what == "range":
                m = _RANGE_VECTOR.fullmatch(row)
                if m is None:
                    raise ValueError(f"{file}:{line_no}: unreadable {row!r}")
                case.matrix_ms = (
                    parse_duration_ms(m["start"]),
                    parse_duration_ms(m["end"]),
                    parse_duration_ms(m["step"]),
                )
            continue  # warn/info annotations: the engine has none to compare
        if re.fullmatch(_NUMBER, row):
            case.scalar = parse_number(row)
            continue
        try:
            labels, values = parse_series(row)
            items = expand_values(values)
        except ValueError:
            case.unreadable = True  # a histogram or a quoted name in the expected result
            continue
        expanded = [v if isinstance(v, float) else None for v in items]
        case.expected.append((labels, expanded))
    return case


# -- what the engine claims ------------------------------------------------------------------


def unsupported_feature(case: Case) -> str | None:
    """The first PromQL feature ``case`` needs that the engine does not claim, else None.
    Anything not named here is run: a case the parser wrongly refuses fails."""
    if case.unreadable:
        return "native histograms or quoted names in the result"
    try:
        tokens = tokenize(case.expr)
    except RuleError:
        return None
    end = Token(Tok.EOF, "", len(case.expr))
    braces = 0
    for n, tok in enumerate(tokens):
        prev = tokens[n - 1] if n else end
        nxt = tokens[n + 1] if n + 1 < len(tokens) else end
        braces += {"{": 1, "}": -1}.get(tok.text, 0) if tok.kind is Tok.PUNCT else 0
        if braces and tok.kind is Tok.STRING and prev.text not in _MATCH_OPS:
            return "quoted metric or label names"
        reason = _token_feature(prev, tok, nxt)
        if reason is not None:
            return reason
    selected = {t.text for t in tokens if t.kind is Tok.IDENT}
    for s in case.series:
        if s.histogram and (s.name in selected or "__name__" in selected):
            return "native histograms"
    return None


def _token_feature(prev: Token, tok: Token, nxt: Token) -> str | None:
    if tok.kind is not Tok.IDENT:
        return None
    word = tok.text.lower()
    if prev.text == "@" and word in ("start", "end"):
        return None
    if word in _UNSUPPORTED_WORDS:
        return _UNSUPPORTED_WORDS[word]
    if nxt.text != "(" and nxt.text.lower() not in ("by", "without"):
        return None
    if word in _OTHER_AGGREGATIONS:
        return f"aggregation {word}"
    # Functions are case-sensitive, aggregations and keywords are not (as in Prometheus).
    if tok.text not in FUNCTIONS and word not in AGGREGATIONS and word not in _KEYWORDS:
        return f"function {tok.text}"
    return None


# -- running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    passed: bool
    detail: str = ""
    error: bool = False


def load_windows(series: list[Series]) -> SeriesWindows:
    windows = SeriesWindows(window_seconds=10**9, max_points=10**7)
    for n, s in enumerate(series, start=1):
        if s.histogram:
            continue
        ref = SeriesRef(n, "", s.name, dict(s.labels))
        windows.add([(ref, t / 1000, STALE_NAN if v is None else v) for t, v in s.points], 0.0)
    return windows


def run_case(case: Case, windows: SeriesWindows) -> Outcome:
    try:
        expr = parse_query(case.expr)
        steps = range(case.start_ms, case.end_ms + 1, case.step_ms)
        start, end = case.start_ms / 1000, case.end_ms / 1000
        step = case.step_ms / 1000 if case.range_query else 0.0
        results = [
            evaluate(expr, windows, t / 1000, start=start, end=end, step=step) for t in steps
        ]
        ranged = evaluate_range(expr, windows, start, end, step) if case.range_query else None
        # The printed form (what a rule export writes) must parse back to the same answers.
        printed = parse_query(format_expr(expr))
        reprinted = [
            evaluate(printed, windows, t / 1000, start=start, end=end, step=step) for t in steps
        ]
    except (RuleError, EvaluationError) as exc:
        if case.expect_fail:
            return Outcome(True)
        return Outcome(False, f"refused: {exc}")
    except Exception as exc:  # a crash is an ERROR, whatever the case expects
        return Outcome(False, f"ERROR {type(exc).__name__}: {exc}", error=True)
    if case.expect_fail:
        return Outcome(False, "expected a failure, got a result")
    if case.string is not None:
        got = results[0]
        return Outcome(got == case.string, f"expected string {case.string!r}, got {got!r}")
    if case.matrix_ms is not None:
        return _compare_matrix(case, results[0])
    if case.scalar is not None:
        got = results[0]
        if not isinstance(got, float):
            return Outcome(False, f"expected scalar {case.scalar}, got a vector {got}")
        return Outcome(_close(case.scalar, got), f"expected {case.scalar}, got {got}")
    if not _same_results(results, reprinted):
        return Outcome(False, f"printed as {format_expr(expr)!r}, it answers differently")
    actual = _as_series(results, len(steps))
    if ranged is not None:
        # The one-pass range evaluation must give exactly what each step gives.
        at_once = {
            _key(labels): [
                dict((round((t - start) / step), v) for t, v in points).get(i)
                for i in range(len(steps))
            ]
            for labels, points in ranged.values()
        }
        if not _same_values(at_once, actual):
            return Outcome(False, f"evaluate_range differs: {at_once} != per step {actual}")
    if case.range_query:
        # Missing trailing steps may be left out of the expected values.
        expected = {
            _key(labels): values + [None] * (len(steps) - len(values))
            for labels, values in case.expected
        }
        if expected.keys() != actual.keys():
            return Outcome(
                False, f"series differ: expected {sorted(expected)}, got {sorted(actual)}"
            )
        for key, want in expected.items():
            have = actual[key]
            if len(want) != len(have) or not all(map(_close_opt, want, have)):
                return Outcome(False, f"{dict(key)}: expected {want}, got {have}")
        return Outcome(True)
    got_order = list(actual)
    wanted = [(_key(labels), values[0] if values else None) for labels, values in case.expected]
    want_order = [k for k, _ in wanted]
    if set(want_order) != set(got_order):
        return Outcome(
            False, f"series differ: expected {sorted(want_order)}, got {sorted(got_order)}"
        )
    for key, value in wanted:
        if not _close_opt(value, actual[key][0]):
            return Outcome(False, f"{dict(key)}: expected {value}, got {actual[key][0]}")
    if case.ordered and want_order != got_order:
        return Outcome(False, f"order: expected {want_order}, got {got_order}")
    return Outcome(True)


def _compare_matrix(case: Case, got: object) -> Outcome:
    if not isinstance(got, tuple):
        return Outcome(False, f"expected a range vector, got {got!r}")
    start, end, step = case.matrix_ms or (0, 0, 1)
    times = [t / 1000 for t in range(start, end + 1, step)]
    expected = {
        _key(labels): [(t, v) for t, v in zip(times, values, strict=False) if v is not None]
        for labels, values in case.expected
    }
    actual = {_key(s.labels): list(s.points) for s in got}
    if expected.keys() != actual.keys():
        return Outcome(False, f"series differ: expected {sorted(expected)}, got {sorted(actual)}")
    for key, want in expected.items():
        have = actual[key]
        same = len(want) == len(have) and all(
            abs(wt - ht) < 1e-6 and _close(wv, hv)
            for (wt, wv), (ht, hv) in zip(want, have, strict=True)
        )
        if not same:
            return Outcome(False, f"{dict(key)}: expected {want}, got {have}")
    return Outcome(True)


def _as_series(
    results: Sequence[object], steps: int
) -> dict[tuple[tuple[str, str], ...], list[float | None]]:
    out: dict[tuple[tuple[str, str], ...], list[float | None]] = {}
    for n, result in enumerate(results):
        samples = [Sample({}, result)] if isinstance(result, float) else result
        if not isinstance(samples, list):
            raise TypeError(f"expected a scalar or vector result, got {result!r}")
        for s in samples:
            out.setdefault(_key(s.labels), [None] * steps)[n] = s.value
    return out


def _same_results(a: Sequence[object], b: Sequence[object]) -> bool:
    def norm(value: object) -> object:
        if isinstance(value, float):
            return "NaN" if math.isnan(value) else value
        if isinstance(value, list):
            return [(sorted(s.labels.items()), norm(s.value)) for s in value]
        if isinstance(value, tuple):
            return [(sorted(r.labels.items()), r.points) for r in value]
        return value

    return [norm(x) for x in a] == [norm(y) for y in b]


def _same_values(
    a: dict[tuple[tuple[str, str], ...], list[float | None]],
    b: dict[tuple[tuple[str, str], ...], list[float | None]],
) -> bool:
    def same(x: float | None, y: float | None) -> bool:
        if x is None or y is None:
            return x is y
        return x == y or (math.isnan(x) and math.isnan(y))

    return a.keys() == b.keys() and all(
        len(a[k]) == len(b[k]) and all(map(same, a[k], b[k])) for k in a
    )


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    # An empty label is no label in Prometheus (and our `agent` pseudo-label is "" here).
    return tuple(sorted((k, v) for k, v in labels.items() if v != ""))


def _close_opt(want: float | None, have: float | None) -> bool:
    if want is None or have is None:
        return want is have
    return _close(want, have)


def _close(want: float, have: float) -> bool:
    """Prometheus's ``almost.Equal`` with its default epsilon."""
    if math.isnan(want) or math.isnan(have):
        return math.isnan(want) and math.isnan(have)
    if want == have:
        return True
    diff = abs(want - have)
    if want == 0 or have == 0 or diff < 2.2250738585072014e-308:
        return diff < 1e-6 * 2.2250738585072014e-308
    return diff / min(abs(want) + abs(have), 1.7976931348623157e308) < 1e-6
