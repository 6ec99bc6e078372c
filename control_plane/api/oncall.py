"""Admin API for people and on-call schedules (``/admin/oncall/...``): users with contact
methods and notification rules, schedules with rotation layers, overrides, who is on call at an
instant and the rendered shifts over a range.

Changes need the ``admin`` scope, and so does reading people (their phone numbers and
addresses); schedules, who is on call and shifts need ``read``. Escalation policies (config)
name people and schedules as ``user:<id>`` / ``schedule:<id>``: deleting one that a policy
names is refused (409), and the start logs every target that does not exist.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
from aiohttp import web

from control_plane.appkeys import CONFIG, POOL
from control_plane.auth import Scope, requires_scope
from control_plane.auth.middleware import current_principal
from control_plane.oncall import store
from control_plane.oncall.model import (
    ID_PATTERN,
    MAX_ID,
    OncallInputError,
    Schedule,
    iso,
    parse_override,
    parse_schedule,
    parse_user,
)
from control_plane.oncall.requests import (
    AtParams,
    NoParams,
    OverrideRequest,
    RangeParams,
    ScheduleRequest,
    UserRequest,
    as_mapping,
)
from control_plane.oncall.schedule import MAX_RANGE_S, oncall_at, shifts
from haetae.web import validation
from haetae.web.bodies import json_response
from haetae.web.problem import ProblemError, invalid

log = logging.getLogger("control_plane.oncall")

_DEFAULT_RANGE_S = 7 * 86400
_MAX_BODY = 256 * 1024


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/oncall/users", get_users)
    r.add_post("/admin/oncall/users", post_user)
    r.add_get("/admin/oncall/users/{id}", get_user)
    r.add_put("/admin/oncall/users/{id}", put_user)
    r.add_delete("/admin/oncall/users/{id}", delete_user)
    r.add_get("/admin/oncall/schedules", get_schedules)
    r.add_post("/admin/oncall/schedules", post_schedule)
    r.add_get("/admin/oncall/schedules/{id}", get_schedule)
    r.add_put("/admin/oncall/schedules/{id}", put_schedule)
    r.add_delete("/admin/oncall/schedules/{id}", delete_schedule)
    r.add_get("/admin/oncall/schedules/{id}/overrides", get_overrides)
    r.add_post("/admin/oncall/schedules/{id}/overrides", post_override)
    r.add_delete("/admin/oncall/schedules/{id}/overrides/{override_id}", delete_override)
    r.add_get("/admin/oncall/schedules/{id}/oncall", get_oncall)
    r.add_get("/admin/oncall/schedules/{id}/shifts", get_shifts)
    app.on_startup.append(check_policy_targets)


# --- users ---------------------------------------------------------------------------------


@requires_scope(Scope.ADMIN)
async def get_users(request: web.Request) -> web.Response:
    validation.query(request, NoParams)
    users = await store.list_users(request.app[POOL])
    return json_response({"users": [u.to_json() for u in users]})


@requires_scope(Scope.ADMIN)
async def post_user(request: web.Request) -> web.Response:
    req = await validation.body(request, UserRequest, max_bytes=_MAX_BODY)
    user = _parsed(parse_user, as_mapping(req))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if await store.get_user(conn, user.id) is not None:
            raise _conflict(
                "body.id", f"user {user.id!r} exists (PUT /admin/oncall/users/{user.id})"
            )
        await store.put_user(conn, user)
    return json_response(user.to_json(), status=201)


@requires_scope(Scope.ADMIN)
async def get_user(request: web.Request) -> web.Response:
    user = await store.get_user(request.app[POOL], _path_key(request))
    if user is None:
        raise _not_found("user")
    return json_response(user.to_json())


@requires_scope(Scope.ADMIN)
async def put_user(request: web.Request) -> web.Response:
    user_id = _path_key(request)
    req = await validation.body(request, UserRequest, max_bytes=_MAX_BODY)
    user = _parsed(parse_user, as_mapping(req), user_id=user_id)
    created = await store.put_user(request.app[POOL], user)
    return json_response(user.to_json(), status=201 if created else 200)


@requires_scope(Scope.ADMIN)
async def delete_user(request: web.Request) -> web.Response:
    user_id = _path_key(request)
    _not_in_policies(request, f"user:{user_id}")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        # Locks out a schedule naming the user being written meanwhile.
        await conn.execute("LOCK TABLE oncall_schedules IN SHARE ROW EXCLUSIVE MODE")
        in_schedules = await store.schedules_with_user(conn, user_id)
        if in_schedules:
            raise _conflict(
                "path.id",
                f"schedules {', '.join(in_schedules)} rotate {user_id!r}: change them first",
            )
        if not await store.delete_user(conn, user_id):
            raise _not_found("user")
    return web.Response(status=204)


# --- schedules -----------------------------------------------------------------------------


async def get_schedules(request: web.Request) -> web.Response:
    validation.query(request, NoParams)
    schedules = await store.list_schedules(request.app[POOL])
    return json_response({"schedules": [s.to_json() for s in schedules]})


@requires_scope(Scope.ADMIN)
async def post_schedule(request: web.Request) -> web.Response:
    req = await validation.body(request, ScheduleRequest, max_bytes=_MAX_BODY)
    schedule = _parsed(parse_schedule, as_mapping(req))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if await store.get_schedule(conn, schedule.id) is not None:
            raise _conflict(
                "body.id",
                f"schedule {schedule.id!r} exists (PUT /admin/oncall/schedules/{schedule.id})",
            )
        await _users_exist(conn, schedule)
        await store.put_schedule(conn, schedule)
    return json_response(schedule.to_json(), status=201)


async def get_schedule(request: web.Request) -> web.Response:
    schedule = await _schedule(request.app[POOL], request)
    return json_response(schedule.to_json())


@requires_scope(Scope.ADMIN)
async def put_schedule(request: web.Request) -> web.Response:
    schedule_id = _path_key(request)
    req = await validation.body(request, ScheduleRequest, max_bytes=_MAX_BODY)
    schedule = _parsed(parse_schedule, as_mapping(req), schedule_id=schedule_id)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _users_exist(conn, schedule)
        created = await store.put_schedule(conn, schedule)
    return json_response(schedule.to_json(), status=201 if created else 200)


@requires_scope(Scope.ADMIN)
async def delete_schedule(request: web.Request) -> web.Response:
    schedule_id = _path_key(request)
    _not_in_policies(request, f"schedule:{schedule_id}")
    if not await store.delete_schedule(request.app[POOL], schedule_id):
        raise _not_found("schedule")
    return web.Response(status=204)


# --- overrides, who is on call, shifts -------------------------------------------------------


async def get_overrides(request: web.Request) -> web.Response:
    since, until = _range(validation.query(request, RangeParams), default_since=None)
    pool = request.app[POOL]
    schedule = await _schedule(pool, request)
    overrides = await store.list_overrides(pool, schedule.id, since, until)
    return json_response({"overrides": [o.to_json() for o in overrides]})


@requires_scope(Scope.ADMIN)
async def post_override(request: web.Request) -> web.Response:
    req = await validation.body(request, OverrideRequest, max_bytes=_MAX_BODY)
    user_id, start, end = _parsed(parse_override, as_mapping(req))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        schedule = await _schedule(conn, request)
        if await store.get_user(conn, user_id) is None:
            raise invalid("body.user", f"no user {user_id!r} (POST /admin/oncall/users first)")
        principal = current_principal(request)
        override = await store.add_override(
            conn, schedule.id, user_id, start, end, principal.name if principal else "unknown"
        )
    return json_response(override.to_json(), status=201)


@requires_scope(Scope.ADMIN)
async def delete_override(request: web.Request) -> web.Response:
    schedule_id = _path_key(request)
    override_id = validation.path_id(request, "override_id")
    if not await store.delete_override(request.app[POOL], schedule_id, override_id):
        raise _not_found("override")
    return web.Response(status=204)


async def get_oncall(request: web.Request) -> web.Response:
    """Who is on call at ``at`` (default: now), and through which layer or override."""
    params = validation.query(request, AtParams)
    at = time.time() if params.at is None else params.at
    pool = request.app[POOL]
    schedule = await _schedule(pool, request)
    # The one-second window stops at the last instant PostgreSQL and iso() both hold.
    overrides = await store.list_overrides(
        pool, schedule.id, at, min(at + 1, validation.MAX_UNIX_S)
    )
    who = oncall_at(schedule, overrides, at)
    out: dict[str, Any] = {"schedule": schedule.id, "at": iso(at), "oncall": None}
    if who is not None:
        user = await store.get_user(pool, who.user_id)
        out["oncall"] = {**who.to_json(), "name": user.name if user else None}
    return json_response(out)


async def get_shifts(request: web.Request) -> web.Response:
    """The final schedule over ``[since, until)`` (default: the next 7 days)."""
    since, until = _range(validation.query(request, RangeParams), default_since=time.time())
    assert since is not None and until is not None
    pool = request.app[POOL]
    schedule = await _schedule(pool, request)
    overrides = await store.list_overrides(pool, schedule.id, since, until)
    rendered = shifts(schedule, overrides, since, until)
    return json_response(
        {
            "schedule": schedule.id,
            "since": iso(since),
            "until": iso(until),
            "shifts": [s.to_json() for s in rendered],
        }
    )


# --- start-up check ------------------------------------------------------------------------


async def check_policy_targets(app: web.Application) -> None:
    """Log (error) every user:/schedule: target of the configured policies that does not
    exist: such a level pages nobody (its timeline says so) until it is created."""
    policies = app[CONFIG].alerting.notify.escalation_policies
    wanted = {
        (kind, name, policy.name)
        for policy in policies
        for level in policy.levels
        for kind, name in level.parsed_targets()
        if kind in ("user", "schedule")
    }
    if not wanted:
        return
    try:
        users = {u.id for u in await store.list_users(app[POOL])}
        schedules = {s.id for s in await store.list_schedules(app[POOL])}
    except (asyncpg.PostgresError, OSError) as exc:  # pragma: no cover - logged only
        log.warning("could not check escalation targets: %s", exc)
        return
    for kind, name, policy in sorted(wanted):
        if name not in (users if kind == "user" else schedules):
            log.error(
                "escalation policy %r targets %s:%s, which does not exist: create it with"
                " POST /admin/oncall/%ss",
                policy,
                kind,
                name,
                kind,
            )


# --- helpers -------------------------------------------------------------------------------


def _parsed(parse: Any, *args: Any, **kwargs: Any) -> Any:
    """The model's verdict on a body the seam has bounded (its fields named ``body.*``)."""
    try:
        return parse(*args, **kwargs)
    except OncallInputError as exc:
        raise invalid(f"body.{exc.field}", exc.detail) from None


def _path_key(request: web.Request) -> str:
    """The user or schedule id in the path: bounded, without NUL, in the id alphabet."""
    key = validation.path_text(request, "id", MAX_ID)
    if not ID_PATTERN.fullmatch(key):
        raise invalid("path.id", "an id: lowercase letters, digits, '.', '_', '-' (1-64)")
    return key


async def _schedule(conn: asyncpg.Connection | asyncpg.Pool, request: web.Request) -> Schedule:
    schedule = await store.get_schedule(conn, _path_key(request))
    if schedule is None:
        raise _not_found("schedule")
    return schedule


async def _users_exist(conn: asyncpg.Connection, schedule: Schedule) -> None:
    missing = set(await store.missing_users(conn, schedule.user_ids()))
    for i, layer in enumerate(schedule.layers):
        for j, user in enumerate(layer.users):
            if user in missing:
                raise invalid(
                    f"body.layers[{i}].users[{j}]",
                    f"no user {user!r} (POST /admin/oncall/users first)",
                )


def _not_in_policies(request: web.Request, target: str) -> None:
    naming = sorted(
        policy.name
        for policy in request.app[CONFIG].alerting.notify.escalation_policies
        if any(f"{k}:{n}" == target for level in policy.levels for k, n in level.parsed_targets())
    )
    if naming:
        raise _conflict(
            "path.id",
            f"escalation policies {', '.join(naming)} target {target} (config): change them",
        )


def _range(
    params: RangeParams, *, default_since: float | None
) -> tuple[float | None, float | None]:
    since = default_since if params.since is None else params.since
    until = params.until
    if until is None and since is not None:
        # Capped so the default range of a far-future since still renders (iso() ends at 9999).
        until = min(since + _DEFAULT_RANGE_S, validation.MAX_UNIX_S)
    if since is not None and until is not None:
        if until <= since:
            raise invalid("query.until", "after since")
        if until - since > MAX_RANGE_S:
            raise invalid("query.until", f"at most {MAX_RANGE_S // 86400} days after since")
    return since, until


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "Not Found", detail=f"no such {what}", type_="not-found")


def _conflict(field: str, detail: str) -> ProblemError:
    return ProblemError(409, "Conflict", detail=detail, type_="conflict", field=field)
