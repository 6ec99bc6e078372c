"""Admin API for alerting rules: create or update, the simple threshold form, list, get, delete.

Rules from the ``rules/`` folder are listed too (``source: file``) but are changed by editing
the files; the API refuses to create, replace or delete them (409).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from control_plane.query.matchers import MAX_MATCHER, METRIC_NAME
from control_plane.rules import ExprError, Rule, RuleError, rule_from_mapping
from control_plane.rules.context import RULE_ENGINE
from control_plane.rules.model import (
    DEFAULT_FLAP_MAX_FLIPS,
    DEFAULT_FLAP_WINDOW_S,
    RULE_NAME,
    Severity,
    threshold_rule,
)
from haetae.web import validation
from haetae.web.bodies import json_response
from haetae.web.problem import ProblemError, invalid

MAX_RULE_NAME = 128
MAX_THRESHOLD_MATCHERS = 32

RuleName = Annotated[str, validation.Text(MAX_RULE_NAME, min_length=1)]
ExprText = Annotated[str, validation.Text(validation.MAX_TEXT, min_length=1)]
MetricName = Annotated[
    str, validation.Text(validation.MAX_NAME, min_length=1, pattern=f"^{METRIC_NAME.pattern}$")
]
MatcherText = Annotated[str, validation.Text(MAX_MATCHER, min_length=1)]
PolicyName = validation.Name
Annotations = Annotated[
    dict[validation.LabelName, Annotated[str, validation.Text(validation.MAX_TEXT)]],
    Field(max_length=validation.MAX_LABELS),
]

Comparator = Literal[">", "<", ">=", "<=", "==", "!="]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class Flap(validation.Model):
    max_flips: Annotated[int, validation.IntRange(1, 10_000)] = DEFAULT_FLAP_MAX_FLIPS
    window: validation.Duration = DEFAULT_FLAP_WINDOW_S


class _RuleFields(validation.Model):
    """What both forms share. The rule model (control_plane.rules.model) still decides what
    the fields mean (reserved labels, templates, the expression); this bounds their shape."""

    name: RuleName | None = None
    for_: validation.Duration | None = Field(None, alias="for")
    keep_firing_for: validation.Duration | None = None
    severity: Severity | None = None
    labels: validation.Labels = {}
    annotations: Annotations = {}
    escalation_policy: PolicyName | None = None


class RuleRequest(_RuleFields):
    expr: ExprText
    flap: Flap | None = None


class ThresholdRequest(_RuleFields):
    metric: MetricName
    matchers: Annotated[list[MatcherText], Field(max_length=MAX_THRESHOLD_MATCHERS)] = []
    comparator: Comparator
    value: Number


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/admin/alerts/rule", post_rule)
    app.router.add_get("/admin/alerts/rules", list_rules)
    app.router.add_get("/admin/alerts/rules/{name}", get_rule)
    app.router.add_delete("/admin/alerts/rules/{name}", delete_rule)
    app.router.add_post("/admin/monitoring/threshold", post_threshold)


async def post_rule(request: web.Request) -> web.Response:
    body = await validation.body(request, RuleRequest, max_bytes=256 * 1024)
    spec = _spec(body)
    return await _save(request, _validated(lambda: rule_from_mapping(spec)))


async def post_threshold(request: web.Request) -> web.Response:
    body = await validation.body(request, ThresholdRequest, max_bytes=64 * 1024)
    spec = _spec(body)
    return await _save(request, _validated(lambda: threshold_rule(spec)))


def _spec(body: validation.Model) -> dict[str, Any]:
    """The validated request in the rule model's mapping shape (durations as seconds)."""
    return body.model_dump(by_alias=True, exclude_unset=True)


async def list_rules(request: web.Request) -> web.Response:
    engine = request.app[RULE_ENGINE]
    api = await engine.store.api_rules()
    rules = [_rule_json(r) for r in engine.ruleset.file_rules.values()]
    rules += [_rule_json(s.rule) for s in api]
    for r in rules:  # each rule's last evaluation: ok, err (with the error) or unknown
        r.update(engine.health.get(r["name"]).as_json())
    rules.sort(key=lambda r: r["name"])
    return json_response({"rules": rules})


async def get_rule(request: web.Request) -> web.Response:
    rule = await _find(request)
    health = request.app[RULE_ENGINE].health.get(rule.name).as_json()
    return json_response({**_rule_json(rule), **health})


async def delete_rule(request: web.Request) -> web.Response:
    engine = request.app[RULE_ENGINE]
    name = validation.path_text(request, "name", MAX_RULE_NAME)
    if not RULE_NAME.fullmatch(name):
        raise _not_found(name)
    if name in engine.ruleset.file_rules:
        raise _file_rule(name, "path.name")
    if not await engine.store.delete_rule(name, time.time()):
        raise _not_found(name)
    await engine.reload()
    return web.Response(status=204)


async def _save(request: web.Request, rule: Rule) -> web.Response:
    engine = request.app[RULE_ENGINE]
    if rule.name in engine.ruleset.file_rules:
        raise _file_rule(rule.name, "body.name")
    created = await engine.store.put_rule(rule)
    await engine.reload()
    return json_response(_rule_json(rule), status=201 if created else 200)


def _validated(build: Callable[[], Rule]) -> Rule:
    try:
        rule = build()
    except ExprError as exc:
        raise ProblemError(
            400,
            "Invalid expression",
            detail=exc.detail,
            type_="invalid-expression",
            field="body.expr",
            hint="a PromQL expression, e.g. rate(http_requests_total[5m]) > 10",
            extra={"position": exc.position},
        ) from exc
    except RuleError as exc:
        raise invalid(f"body.{exc.field}", exc.message) from exc
    return rule


async def _find(request: web.Request) -> Rule:
    engine = request.app[RULE_ENGINE]
    name = validation.path_text(request, "name", MAX_RULE_NAME)
    if not RULE_NAME.fullmatch(name):
        raise _not_found(name)
    rule = engine.ruleset.file_rules.get(name) or await engine.store.get_rule(name)
    if rule is None:
        raise _not_found(name)
    return rule


def _rule_json(rule: Rule) -> dict[str, Any]:
    return {**rule.spec(), "source": rule.source.value}


def _not_found(name: str) -> ProblemError:
    return ProblemError(
        404,
        "Not Found",
        detail=f"no rule named {name[:MAX_RULE_NAME]!r}",
        type_="not-found",
        field="path.name",
    )


def _file_rule(name: str, field: str) -> ProblemError:
    return ProblemError(
        409,
        "Conflict",
        detail=f"{name!r} is defined in a rule file; edit the file instead",
        type_="rule-in-file",
        field=field,
    )
