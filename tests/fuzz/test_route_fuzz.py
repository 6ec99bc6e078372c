"""No input gives a 5xx, and every error is problem+json: every route of the real control plane
(read from its router at test time, so a new route is covered the day it is added), fed hostile
path parameters, query strings and bodies, with an admin token and without one.

Two parts: a catalogue that sends each known-hostile value through each slot of each route
(NUL, Unicode digits, 1e308, 2^64-1, a 5,000-digit integer, years 0 and 9999, ``99999999999d``,
lists and objects where strings or enums belong, deep nesting, 5 KB strings, wrong content types,
multipart with a bad boundary), and a hypothesis search over random combinations of them.
Failures are gathered and reported together: route, input, status, and the server's traceback.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import Answer, LiveControlPlane, Route

from haetae.web.validation import Model


@dataclass(frozen=True)
class RawJson:
    """JSON text sent as is: numbers no encoder writes (5,000 digits, 1e400)."""

    text: str


HOSTILE_TEXT: list[str] = [
    "a\x00b",
    "\x00",
    "²",
    "١٢",  # Arabic-Indic digits: isdigit() is true
    "x" * 5000,
    "",
    " ",
    "-1",
    "0",
    "1e15",
    "1e308",
    "-1e308",
    "NaN",
    "inf",
    "18446744073709551615",
    "9" * 5000,
    "99999999999d",
    "1e400s",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "10000-01-01T00:00:00Z",
    "not-a-number",
    "../../etc/passwd",
    "%00",
    "http://127.0.0.1:8340/admin/tokens",
    "'; DROP TABLE incidents; --",
    "\ud7ff\u202e\ufeff",
]
# The short list tried in every known query key of every route.
HOSTILE_QUERY = ["a\x00b", "²", "1e308", "18446744073709551615", "9" * 5000, "99999999999d",
                 "0000-01-01T00:00:00Z", "x" * 5000, "-1"]  # fmt: skip
HOSTILE_JSON: list[Any] = [
    *HOSTILE_TEXT,
    1e15,
    1e308,
    -1e308,
    2**64 - 1,
    -(2**63) - 1,
    2**63,
    RawJson("1" * 5000),
    RawJson("1e400"),
    -1,
    0,
    253_402_300_800,
    True,
    None,
    [],
    {},
    ["x"],
    [["x"]],
    {"a": "b"},
    {"a\x00": "b"},
    {f"l{i}": "v" * 4096 for i in range(64)},
    RawJson("[" * 300 + "]" * 300),
    RawJson('{"a":' * 300 + "1" + "}" * 300),
]
# The body and query keys the routes read, beyond those of the validation seam's models
# (collected at test time): from the routes still parsing by hand, and the findings.
KNOWN_KEYS = {
    "action", "address", "agent_id", "assignee", "at", "contact", "contact_methods", "day",
    "delay", "duration", "end", "exp", "hostname", "id", "kind", "labels", "layers", "name",
    "notification_rules", "policy", "priority", "refresh", "restrictions", "rotation",
    "rotation_s", "severity", "sig", "since", "start", "status", "text", "timezone", "title",
    "type", "until", "url", "user", "users",
}  # fmt: skip
# A plausible body per write route, so that a hostile value in one field reaches code past the
# first "missing field" check. Routes without one get generic bodies; a stale seed only makes
# the fuzz shallower, never wrong.
SEEDS: dict[str, dict[str, Any]] = {
    "POST /admin/tokens": {"kind": "enrolment", "name": "fz", "expires_in_s": 3600},
    "POST /api/v1/agents/enroll": {"agent_id": "fz-agent", "hostname": "h", "labels": {"a": "b"}},
    "POST /admin/agents/{agent_id}/takeover": {"within_s": 60},
    "POST /admin/cache/invalidate": {"keys": ["k"]},
    "POST /admin/cache/warmup": {"source": "hot", "limit": 10},
    "POST /admin/cdn/purge": {"urls": ["https://cdn.example/x"]},
    "POST /admin/alerts/rule": {
        "name": "fz",
        "expr": "up == 0",
        "for": "1m",
        "labels": {"team": "x"},
        "severity": "warning",
    },
    "POST /admin/monitoring/threshold": {
        "metric": "cpu",
        "comparator": ">",
        "value": 1,
        "for": "1m",
    },
    "POST /admin/alerts/silences": {
        "matchers": ['alertname="x"'],
        "duration": "1h",
        "comment": "c",
    },
    "POST /admin/incidents/create": {"title": "t", "severity": "warning", "policy": "default"},
    "POST /admin/incidents/{id}/note": {"text": "n"},
    "POST /admin/incidents/{id}/reassign": {"assignee": "u"},
    "POST /admin/oncall/users": {"name": "u", "contact_methods": []},
    "PUT /admin/oncall/users/{id}": {"name": "u", "contact_methods": []},
    "POST /admin/oncall/schedules": {
        "name": "s",
        "timezone": "UTC",
        "layers": [{"users": ["u"], "start": 0, "rotation": "1w"}],
    },
    "PUT /admin/oncall/schedules/{id}": {"name": "s", "timezone": "UTC", "layers": []},
    "POST /admin/oncall/schedules/{id}/overrides": {"user": "u", "start": 0, "end": 3600},
    "POST /api/v1/analyze": {"url": "not-a-number"},
    "POST /api/v1/analyze/async": {"url": "not-a-number", "priority": "high"},
}
ENROLMENT_SECRET = "preshared-enrolment-secret"
CONTENT_TYPES = [
    "application/json",
    None,
    "multipart/form-data; boundary=zzz",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "text/xml",
    "application/octet-stream",
    "application/json; charset=latin-1",
]
MULTIPART_BAD = b"--abc\r\nContent-Disposition: form-data; name=action\r\n\r\nack\r\n--abc--\r\n"


def known_keys() -> list[str]:
    keys = set(KNOWN_KEYS)
    stack: list[type[Model]] = [Model]
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        for name, info in model.model_fields.items():
            keys.add(info.alias or name)
    return sorted(keys)


def to_json(value: Any) -> str:
    if isinstance(value, RawJson):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # orjson stops at 64 bits
    return orjson.dumps(value).decode()


# --- one request, and what it must answer ---------------------------------------------------


@dataclass
class Attempt:
    route: Route
    path_values: dict[str, str] = field(default_factory=dict)
    query: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    content_type: str | None = "application/json"
    token: str | None = None

    def target(self) -> str:
        values = {
            p: quote(self.path_values.get(p, baseline(self.route)), safe="")
            for p in self.route.params
        }
        path = self.route.path(values)
        if self.query:
            path += "?" + "&".join(
                f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.query
            )
        return path

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.content_type and self.body is not None:
            headers["Content-Type"] = self.content_type
        return headers

    def describe(self) -> str:
        body = (self.body or b"")[:160]
        return (
            f"{self.route.method} {self.target()[:200]} ct={self.content_type!r} "
            f"token={'yes' if self.token else 'no'} body={body!r}"
        )


def baseline(route: Route) -> str:
    # A plausible id where the slot under test is another one; never 1 on a DELETE, which
    # could revoke the fuzz's own admin token.
    return "424242" if route.method == "DELETE" else "1"


def verdict(answer: Answer) -> str | None:
    if answer.status >= 500:
        return f"{answer.status}"
    # /api/v1/query and the rest of the Prometheus API answer in its envelope (clients parse it).
    prometheus = answer.body.startswith(b'{"status":"error","errorType":')
    if answer.status >= 400 and not (
        answer.content_type.startswith("application/problem+json") or prometheus
    ):
        return f"{answer.status} as {answer.content_type or 'no content type'}"
    return None


@dataclass
class Findings:
    live: LiveControlPlane
    failures: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    sent: int = 0

    def send(self, attempt: Attempt) -> None:
        errors_before = len(self.live.server_errors)
        answer = self.live.request(
            attempt.route.method, attempt.target(), attempt.headers(), attempt.body
        )
        self.sent += 1
        problem = verdict(answer)
        if problem is None:
            return
        trace = ""
        for record in self.live.server_errors[errors_before:]:
            stack = str(record.__dict__.get("error.stack_trace") or record.getMessage())
            trace = stack.strip().splitlines()[-1][:200]
        cases = self.failures.setdefault((str(attempt.route), problem), [])
        if len(cases) < 3:
            cases.append(f"{attempt.describe()}\n      -> {answer.body[:160]!r} {trace}")

    def report(self) -> str:
        lines = [f"{len(self.failures)} failing (route, answer) pairs over {self.sent} requests:"]
        for (route, problem), cases in sorted(self.failures.items()):
            lines.append(f"  {route}  => {problem}")
            lines.extend(f"    {case}" for case in cases)
        return "\n".join(lines)


# --- the catalogue: each hostile value through each slot of each route -----------------------


def catalogue(live: LiveControlPlane, keys: list[str]) -> Iterable[Attempt]:
    admin = live.admin_token
    key_cycle = itertools.cycle(keys)
    for route in live.routes:
        name = str(route)
        token = ENROLMENT_SECRET if name == "POST /api/v1/agents/enroll" else admin
        seed = SEEDS.get(name, {})
        # The plain request, with the caller's token and without one.
        yield Attempt(route, body=_body_for(route, seed), token=token)
        yield Attempt(route, body=_body_for(route, seed))
        for param in route.params:
            for value in HOSTILE_TEXT:
                yield Attempt(route, {param: value}, body=_body_for(route, seed), token=token)
        body = _body_for(route, seed)
        for key in keys:
            for value in HOSTILE_QUERY:
                yield Attempt(route, query=[(key, value)], body=body, token=token)
        for value in HOSTILE_TEXT:
            yield Attempt(route, query=[(next(key_cycle), value)], body=body, token=token)
        if route.method not in ("POST", "PUT", "PATCH"):
            continue
        for slot in [*seed, next(key_cycle)]:  # each field of the seed, and one it lacks
            for value in HOSTILE_JSON:
                yield Attempt(route, body=to_json({**seed, slot: value}).encode(), token=token)
        for ctype in CONTENT_TYPES:
            yield Attempt(route, body=to_json(seed).encode(), content_type=ctype, token=token)
        yield Attempt(
            route,
            body=MULTIPART_BAD,
            content_type="multipart/form-data; boundary=zzz",
            token=token,
        )
        yield Attempt(route, body=b"\xff\xfe{not json", token=token)


def _body_for(route: Route, seed: dict[str, Any]) -> bytes | None:
    return to_json(seed).encode() if route.method in ("POST", "PUT", "PATCH") else None


def test_routes_are_enumerated_from_the_router(live_control_plane: LiveControlPlane) -> None:
    names = {str(r) for r in live_control_plane.routes}
    assert len(names) >= 50
    assert {"POST /admin/tokens", "GET /admin/incidents/{id}", "POST /api/v1/analyze"} <= names
    stale = set(SEEDS) - names
    assert not stale, f"seeds for routes that no longer exist: {stale}"


def test_hostile_catalogue_on_every_route(live_control_plane: LiveControlPlane) -> None:
    findings = Findings(live_control_plane)
    for attempt in catalogue(live_control_plane, known_keys()):
        findings.send(attempt)
    assert not findings.failures, findings.report()


# --- hypothesis: random combinations -------------------------------------------------------

text_values = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=40),
    st.integers().map(str),
    st.floats().map(str),
)
json_leaves = st.one_of(
    st.sampled_from(HOSTILE_JSON),
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def attempts(draw: st.DrawFn, live: LiveControlPlane, keys: list[str], with_token: bool) -> Attempt:
    route = draw(st.sampled_from(live.routes))
    key = st.one_of(st.sampled_from(keys), st.text(min_size=1, max_size=12))
    path_values = {p: draw(st.one_of(text_values, st.just("1"))) for p in route.params}
    query = draw(st.lists(st.tuples(key, text_values), max_size=4))
    body: bytes | None = None
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if route.method in ("POST", "PUT", "PATCH", "DELETE"):
        seed = SEEDS.get(str(route), {})
        extra = draw(st.dictionaries(key, json_values, max_size=4))
        shape = draw(st.sampled_from(["seeded", "random", "raw", "multipart"]))
        if shape == "seeded":
            body = to_json({**seed, **extra}).encode()
        elif shape == "random":
            body = to_json(draw(json_values)).encode()
        elif shape == "raw":
            body = draw(st.binary(max_size=200))
        else:
            body, content_type = MULTIPART_BAD, "multipart/form-data; boundary=zzz"
    token = None
    if with_token:
        token = ENROLMENT_SECRET if str(route) == "POST /api/v1/agents/enroll" else live.admin_token
    return Attempt(route, path_values, query, body, content_type, token)


def _fuzz(live: LiveControlPlane, with_token: bool, examples: int) -> Findings:
    findings = Findings(live)

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(attempt=attempts(live, known_keys(), with_token))
    def run(attempt: Attempt) -> None:
        # Gathered rather than raised: one report lists every failing route, not the first.
        findings.send(attempt)

    run()
    return findings


def test_fuzz_with_an_admin_token(live_control_plane: LiveControlPlane) -> None:
    findings = _fuzz(live_control_plane, with_token=True, examples=2000)
    assert not findings.failures, findings.report()


def test_fuzz_without_a_token(live_control_plane: LiveControlPlane) -> None:
    findings = _fuzz(live_control_plane, with_token=False, examples=400)
    assert not findings.failures, findings.report()
