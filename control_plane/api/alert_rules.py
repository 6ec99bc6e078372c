"""Admin API for alerting rules: create or update, the simple threshold form, list, get, delete.

Rules from the ``rules/`` folder are listed too (``source: file``) but are changed by editing
the files; the API refuses to create, replace or delete them (409).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from control_plane.rules import ExprError, Rule, RuleError, rule_from_mapping
from control_plane.rules.context import RULE_ENGINE
from control_plane.rules.model import RULE_NAME, threshold_rule
from haetae.web.bodies import json_response, read_json
from haetae.web.problem import ProblemError, invalid


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/admin/alerts/rule", post_rule)
    app.router.add_get("/admin/alerts/rules", list_rules)
    app.router.add_get("/admin/alerts/rules/{name}", get_rule)
    app.router.add_delete("/admin/alerts/rules/{name}", delete_rule)
    app.router.add_post("/admin/monitoring/threshold", post_threshold)


async def post_rule(request: web.Request) -> web.Response:
    body = await read_json(request, max_bytes=256 * 1024)
    return await _save(request, _validated(lambda: rule_from_mapping(body)))


async def post_threshold(request: web.Request) -> web.Response:
    body = await read_json(request, max_bytes=64 * 1024)
    return await _save(request, _validated(lambda: threshold_rule(body)))


async def list_rules(request: web.Request) -> web.Response:
    engine = request.app[RULE_ENGINE]
    api = await engine.store.api_rules()
    rules = [_rule_json(r) for r in engine.ruleset.file_rules.values()]
    rules += [_rule_json(s.rule) for s in api]
    rules.sort(key=lambda r: r["name"])
    return json_response({"rules": rules})


async def get_rule(request: web.Request) -> web.Response:
    return json_response(_rule_json(await _find(request)))


async def delete_rule(request: web.Request) -> web.Response:
    engine = request.app[RULE_ENGINE]
    name = request.match_info["name"]
    if name in engine.ruleset.file_rules:
        raise _file_rule(name)
    if not await engine.store.delete_rule(name, time.time()):
        raise _not_found(name)
    await engine.reload()
    return web.Response(status=204)


async def _save(request: web.Request, rule: Rule) -> web.Response:
    engine = request.app[RULE_ENGINE]
    if rule.name in engine.ruleset.file_rules:
        raise _file_rule(rule.name)
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
            field="expr",
            hint="a PromQL expression, e.g. rate(http_requests_total[5m]) > 10",
            extra={"position": exc.position},
        ) from exc
    except RuleError as exc:
        raise invalid(exc.field, exc.message) from exc
    return rule


async def _find(request: web.Request) -> Rule:
    engine = request.app[RULE_ENGINE]
    name = request.match_info["name"]
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
        404, "Not Found", detail=f"no rule named {name[:128]!r}", type_="not-found", field="name"
    )


def _file_rule(name: str) -> ProblemError:
    return ProblemError(
        409,
        "Conflict",
        detail=f"{name!r} is defined in a rule file; edit the file instead",
        type_="rule-in-file",
        field="name",
    )
