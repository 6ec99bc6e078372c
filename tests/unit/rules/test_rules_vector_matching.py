"""Vector matching (on, ignoring, group_left/right) and the set operators, with the expected
values of Prometheus' `operators.test` where they come from there."""

from __future__ import annotations

import pytest
from test_rules_evaluator import T0, Data

from control_plane.rules.ast import Binary, Cardinality, VectorMatching
from control_plane.rules.evaluator import EvaluationError, Sample, evaluate
from control_plane.rules.parser import parse_expr

AT = T0 + 60


def labelled(result: object) -> dict[tuple[tuple[str, str], ...], float]:
    """Result as {sorted labels without agent: value}."""
    assert isinstance(result, list)
    out = {}
    for s in result:
        assert isinstance(s, Sample)
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "agent"))
        assert key not in out
        out[key] = s.value
    return out


def L(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


@pytest.fixture
def d() -> Data:
    # Prometheus operators.test: http_requests by job/instance/group, plus vector_matching_a/b.
    data = Data()
    for job, group, instance, value in [
        ("api-server", "production", "0", 100),
        ("api-server", "production", "1", 200),
        ("api-server", "canary", "0", 300),
        ("api-server", "canary", "1", 400),
        ("app-server", "production", "0", 500),
        ("app-server", "production", "1", 600),
        ("app-server", "canary", "0", 700),
        ("app-server", "canary", "1", 800),
    ]:
        data.load(
            "http_requests", {"job": job, "group": group, "instance": instance}, [float(value)]
        )
    data.load("method_code", {"method": "get", "code": "500"}, [24.0])
    data.load("method_code", {"method": "get", "code": "404"}, [30.0])
    data.load("method_code", {"method": "put", "code": "501"}, [3.0])
    data.load("method_code", {"method": "post", "code": "500"}, [6.0])
    data.load("method_code", {"method": "post", "code": "404"}, [21.0])
    data.load("method", {"method": "get"}, [600.0])
    data.load("method", {"method": "del"}, [34.0])
    data.load("method", {"method": "post"}, [120.0])
    return data


def test_parser_builds_the_matching() -> None:
    expr = parse_expr("a / ignoring(code) group_left(team) b")
    assert isinstance(expr, Binary)
    assert expr.matching == VectorMatching(Cardinality.MANY_TO_ONE, ("code",), False, ("team",))
    expr = parse_expr("a > bool on() group_right b")
    assert isinstance(expr, Binary) and expr.return_bool
    assert expr.matching == VectorMatching(Cardinality.ONE_TO_MANY, (), True, ())
    # No modifier between vectors: one-to-one on all labels; set operators: many-to-many.
    assert parse_expr("a + b").matching == VectorMatching()  # type: ignore[union-attr]
    assert parse_expr("a and b").matching.card is Cardinality.MANY_TO_MANY  # type: ignore[union-attr]
    assert parse_expr("a + 1").matching is None  # type: ignore[union-attr]


def test_set_operators_bind_loosest_or_loosest_of_all() -> None:
    expr = parse_expr("a or b and c > 1 unless d")
    assert isinstance(expr, Binary) and expr.op == "or"
    assert isinstance(expr.rhs, Binary) and expr.rhs.op == "unless"
    assert isinstance(expr.rhs.lhs, Binary) and expr.rhs.lhs.op == "and"


def test_group_left_divides_many_by_one(d: Data) -> None:
    got = labelled(d.eval("method_code / ignoring(code) group_left method", AT))
    assert got == {
        L(method="get", code="500"): 0.04,
        L(method="get", code="404"): 0.05,
        L(method="post", code="500"): 0.05,
        L(method="post", code="404"): 0.175,
    }


def test_group_right_keeps_the_right_hand_labels(d: Data) -> None:
    got = labelled(d.eval("method / ignoring(code) group_right method_code", AT))
    assert got[L(method="get", code="500")] == 25.0
    # Comparisons filter with the left (the "one" side's) value, on the "many" side's labels.
    got = labelled(d.eval("method > ignoring(code) group_right method_code", AT))
    assert got[L(method="get", code="500", __name__="method_code")] == 600.0


def test_group_left_copies_the_included_labels_from_the_one_side() -> None:
    d = Data()
    d.load("errors", {"instance": "i1", "path": "/a"}, [4.0])
    d.load("errors", {"instance": "i1", "path": "/b"}, [6.0])
    d.load("info", {"instance": "i1", "team": "web"}, [1.0])
    got = labelled(d.eval("errors * on(instance) group_left(team) info", AT))
    assert got == {
        L(instance="i1", path="/a", team="web"): 4.0,
        L(instance="i1", path="/b", team="web"): 6.0,
    }


def test_on_keeps_only_the_matching_labels_one_to_one(d: Data) -> None:
    got = labelled(
        d.eval(
            "sum by (job) (http_requests)"
            ' - on(job) sum by (job, group) (http_requests{group="canary"})',
            AT,
        )
    )
    assert got == {L(job="api-server"): 300.0, L(job="app-server"): 1100.0}
    # A comparison on(...) keeps the left value, trimmed to the matching labels.
    got = labelled(
        d.eval('http_requests{instance="0"} > on(job, group) http_requests{instance="1"}', AT)
    )
    assert got == {}
    got = labelled(
        d.eval('http_requests{instance="1"} > on(job, group) http_requests{instance="0"}', AT)
    )
    assert got == {
        L(job="api-server", group="production"): 200.0,
        L(job="api-server", group="canary"): 400.0,
        L(job="app-server", group="production"): 600.0,
        L(job="app-server", group="canary"): 800.0,
    }


def test_ignoring_drops_the_ignored_labels(d: Data) -> None:
    got = labelled(
        d.eval('http_requests{instance="1"} - ignoring(instance) http_requests{instance="0"}', AT)
    )
    assert got == {
        L(job="api-server", group="production"): 100.0,
        L(job="api-server", group="canary"): 100.0,
        L(job="app-server", group="production"): 100.0,
        L(job="app-server", group="canary"): 100.0,
    }


def test_bool_drops_the_name_and_answers_zero_or_one(d: Data) -> None:
    got = labelled(
        d.eval(
            'http_requests{instance="1"} > bool ignoring(instance)'
            ' http_requests{instance="0"} + 150',
            AT,
        )
    )
    assert got == {
        L(job="api-server", group="production"): 0.0,
        L(job="api-server", group="canary"): 0.0,
        L(job="app-server", group="production"): 0.0,
        L(job="app-server", group="canary"): 0.0,
    }


def test_many_to_one_without_grouping_is_an_error(d: Data) -> None:
    with pytest.raises(EvaluationError, match="many-to-one matching must be explicit"):
        d.eval("method_code / ignoring(code) method", AT)
    # The "one" side must be unique per match group.
    with pytest.raises(EvaluationError, match=r"duplicate series .* right hand-side"):
        d.eval("method / ignoring(code) group_left method_code", AT)
    with pytest.raises(EvaluationError, match=r"duplicate series .* left hand-side"):
        d.eval("method_code / ignoring(code) group_right method", AT)


def test_grouping_labels_must_give_unique_results() -> None:
    d = Data()
    d.load("a", {"x": "1", "y": "1"}, [1.0])
    d.load("a", {"x": "1", "y": "2"}, [1.0])
    d.load("b", {"x": "1", "z": "9"}, [1.0])
    # group_left(y) takes y from b, which has none: both results become {x="1"}.
    with pytest.raises(EvaluationError, match="grouping labels must ensure unique matches"):
        d.eval("a + on(x) group_left(y) b", AT)
    assert len(labelled(d.eval("a + on(x) group_left(z) b", AT))) == 2


def test_and_or_unless(d: Data) -> None:
    lhs = 'http_requests{group="canary"}'
    got = labelled(d.eval(f'{lhs} and http_requests{{instance="0"}}', AT))
    assert got == {
        L(__name__="http_requests", job="api-server", group="canary", instance="0"): 300.0,
        L(__name__="http_requests", job="app-server", group="canary", instance="0"): 700.0,
    }
    got = labelled(d.eval(f"{lhs} unless on(job) http_requests{{job='app-server'}}", AT))
    assert set(got) == {
        L(__name__="http_requests", job="api-server", group="canary", instance="0"),
        L(__name__="http_requests", job="api-server", group="canary", instance="1"),
    }
    got = labelled(d.eval(f"{lhs} or on(job, group, instance) http_requests * 2", AT))
    assert len(got) == 8
    assert got[L(__name__="http_requests", job="api-server", group="canary", instance="0")] == 300
    assert got[L(job="api-server", group="production", instance="0")] == 200.0
    # Many-to-many is fine: duplicates on either side are no error.
    assert len(labelled(d.eval("http_requests and on() method", AT))) == 8
    assert labelled(d.eval("http_requests unless on() method", AT)) == {}


def test_filter_then_set_operator_in_one_rule(d: Data) -> None:
    expr = "method_code > 20 unless ignoring(code) method < 100"
    got = labelled(evaluate(parse_expr(expr), d.windows, AT))
    assert set(got) == {
        L(__name__="method_code", method="get", code="500"),
        L(__name__="method_code", method="get", code="404"),
        L(__name__="method_code", method="post", code="404"),
    }
