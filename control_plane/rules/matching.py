"""Binary operators between two instant vectors, with Prometheus' vector matching; pure.

Samples pair up by a signature: the labels named in `on(...)`, or all labels but `__name__` and
those in `ignoring(...)`. Arithmetic and comparison are one-to-one unless `group_left`
(many-to-one) or `group_right` (one-to-many) says which side may repeat; `and`, `or` and
`unless` are many-to-many set operations. Result labels and error cases follow Prometheus'
engine (`VectorBinop`, `resultMetric`, `VectorAnd/Or/Unless`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from control_plane.rules.ast import COMPARISONS, Cardinality, VectorMatching

NAME_LABEL = "__name__"

Labels = Mapping[str, str]
Signature = tuple[tuple[str, str], ...]


class _Labelled(Protocol):
    @property
    def labels(self) -> Labels: ...


S = TypeVar("S", bound=_Labelled)


class MatchingError(RuntimeError):
    """Two vectors cannot be matched as asked (duplicate series on a "one" side, or several
    pairs giving one result label set): a property of the data, reported per evaluation."""


def signature_fn(matching: VectorMatching) -> Callable[[Labels], Signature]:
    if matching.on:
        keep = frozenset(matching.labels)
        return lambda labels: tuple(sorted((k, v) for k, v in labels.items() if k in keep and v))
    drop = frozenset({*matching.labels, NAME_LABEL})
    return lambda labels: tuple(sorted((k, v) for k, v in labels.items() if k not in drop and v))


def set_operation(op: str, matching: VectorMatching, lhs: list[S], rhs: list[S]) -> list[S]:
    """`and`, `or`, `unless`: samples are kept whole, names included."""
    sig = signature_fn(matching)
    if op == "and":
        right = {sig(s.labels) for s in rhs}
        return [s for s in lhs if sig(s.labels) in right]
    if op == "unless":
        right = {sig(s.labels) for s in rhs}
        return [s for s in lhs if sig(s.labels) not in right]
    left = {sig(s.labels) for s in lhs}
    return [*lhs, *(s for s in rhs if sig(s.labels) not in left)]


def match_pairs(
    op: str, matching: VectorMatching, lhs: list[S], rhs: list[S]
) -> list[tuple[S, S, dict[str, str]]]:
    """The (left, right, result labels) triples of an arithmetic or comparison operator, in
    the left operand's order; result labels keep ``__name__`` (the caller drops it when the
    operator calls for that)."""
    sig = signature_fn(matching)
    one_to_many = matching.card is Cardinality.ONE_TO_MANY
    many, one = (rhs, lhs) if one_to_many else (lhs, rhs)
    one_side = "left" if one_to_many else "right"
    by_sig: dict[Signature, S] = {}
    for s in one:
        key = sig(s.labels)
        if key in by_sig:
            raise MatchingError(
                f"found duplicate series for the match group {_fmt(key)} on the {one_side} "
                "hand-side of the operation; many-to-many matching not allowed: matching "
                "labels must be unique on one side"
            )
        by_sig[key] = s
    out: list[tuple[S, S, dict[str, str]]] = []
    matched: set[Signature] = set()
    results: set[Signature] = set()
    for m in many:
        key = sig(m.labels)
        o = by_sig.get(key)
        if o is None:
            continue
        labels = _result_labels(m.labels, o.labels, op, matching)
        if matching.card is Cardinality.ONE_TO_ONE:
            if key in matched:
                raise MatchingError(
                    f"multiple matches for labels {_fmt(key)}: many-to-one matching must be "
                    "explicit (group_left/group_right)"
                )
            matched.add(key)
        else:
            result_key = tuple(sorted(labels.items()))
            if result_key in results:
                raise MatchingError(
                    f"multiple matches for labels {_fmt(result_key)}: grouping labels must "
                    "ensure unique matches"
                )
            results.add(result_key)
        out.append((o, m, labels) if one_to_many else (m, o, labels))
    return out


def _result_labels(many: Labels, one: Labels, op: str, matching: VectorMatching) -> dict[str, str]:
    """Prometheus' ``resultMetric``: the "many" side's labels, trimmed to the matching labels
    for one-to-one, plus the `group_x(...)` labels taken from the "one" side."""
    labels = dict(many)
    if op not in COMPARISONS:
        labels.pop(NAME_LABEL, None)
    if matching.card is Cardinality.ONE_TO_ONE:
        if matching.on:
            labels = {k: v for k, v in labels.items() if k in matching.labels}
        else:
            for k in matching.labels:
                labels.pop(k, None)
    for k in matching.include:
        value = one.get(k, "")
        if value:
            labels[k] = value
        else:
            labels.pop(k, None)
    return labels


def _fmt(sig: Signature) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sig) + "}"
