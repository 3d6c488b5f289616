"""The REST API's (and so the UI's) trigger and backfill of a perf DAG refuse bad Params with perfpipe's own message.

Airflow checks a run's conf against the Params' JSON schema and answers with jsonschema's text: the failing rule
followed by a dump of the schema ("Failed validating ..."). This root middleware of the API server (registered by
perfpipe_plugin through `fastapi_root_middlewares`) checks the conf first, with the same model the CLI's
pre-flight and the tasks use, and answers 400 with one line per problem, naming the field:

* `POST /api/v2/dags/perf_*/dagRuns`: the body's `conf`;
* `POST /api/v2/backfills` (and `/backfills/dry_run`) whose body's `dag_id` is a perf DAG: its `dag_run_conf`,
  so a backfill cannot create runs the trigger would refuse.

A conf key the DAG has no Param for is refused too (Airflow would keep it and run with the defaults): `vus` is
not a Param, `overrides.vus` is. Whatever the model lets through is then checked against the Params' own JSON
schema, reported as one line per problem as well, so no jsonschema dump reaches the user.

Only callers Airflow would let create that DAG's runs get perfpipe's answer; anyone else passes through to
Airflow's own 401/403 and learns nothing about the config (its targets, its profiles). The check only reads the
config files: no DNS, no InfluxDB, no k6 (those stay in the run's first task).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Awaitable, Callable

from perfpipe import TEST_TYPES

log = logging.getLogger(__name__)

_TRIGGER_PATH = re.compile(r"^/api/v2/dags/(?P<dag_id>perf_[A-Za-z0-9_]+)/dagRuns/?$")
_BACKFILL_PATH = re.compile(r"^/api/v2/backfills(?:/dry_run)?/?$")
_PERF_DAG = re.compile(r"^perf_[A-Za-z0-9_]+$")
# A body bigger than this is refused by Airflow's own limits or the schema; it is not parsed twice here.
_MAX_BODY = 4 * 1024 * 1024
REFUSED = "refused before any load: "

# (scope, dag_id) -> may this caller create runs of that DAG?
Authorize = Callable[[dict, str], Awaitable[bool]]


def stages_of(dag_id: str) -> list[str]:
    """The test types a perf DAG runs (the pipeline: every stage; soak only with include_soak)."""
    name = dag_id.removeprefix("perf_")
    if name in TEST_TYPES:
        return [name]
    if name == "pipeline":
        # the API server loads this middleware: the pipeline table only for its DAG
        from perfpipe.app.pipeline import STAGES

        return list(STAGES)
    return []


def refusal(dag_id: str, conf: Any) -> str | None:
    """perfpipe's message for a run conf it refuses, or None (the run may be created)."""
    # Function-local: the API server imports this module with the plugin at startup; the model, the config and
    # Airflow's Param classes are loaded on the first perf trigger instead.
    from perfpipe.app.stage import check_params
    from perfpipe.core.errors import InputError
    from perfpipe.entry.dag_factory import dag_params

    stages = stages_of(dag_id)
    if not stages or conf is None:
        return None
    if not isinstance(conf, dict):
        return "conf: expected a mapping of params (target, inline_target, profile, overrides, ...)"
    declared = dag_params(dag_id)
    unknown = [key for key in conf if key not in declared]
    if unknown:
        return "\n".join(unknown_param(key, list(declared)) for key in unknown)
    # Airflow fills what the conf leaves out from the Params' defaults: so does this check.
    params = {**{name: param.value for name, param in declared.items()}, **conf}
    try:
        for stage in stages:
            check_params(stage, params)
    except InputError as exc:
        return str(exc)
    return schema_problems(declared, params)


def unknown_param(key: str, known: list[str]) -> str:
    """`key: unknown key (known: ...)`, pointing at `overrides` when the key is an override's."""
    from perfpipe.core.model.overrides import SHAPE_FIELDS, split_key  # with the model: on the first perf trigger

    _, parts = split_key(key)
    is_override = (len(parts) == 1 and parts[0] in SHAPE_FIELDS) or parts[0] == "thresholds"
    hint = f'; it is an override: {{"overrides": {{"{key}": ...}}}}' if is_override else ""
    return f"{key}: unknown key (known: {', '.join(known)}){hint}"


def schema_problems(declared: dict[str, Any], params: dict[str, Any]) -> str | None:
    """What the Params' JSON schemas (the ones Airflow applies next) refuse, one line per problem, or None."""
    # Airflow's own validator, loaded on the first perf trigger rather than at the API server's startup.
    from jsonschema import FormatChecker
    from jsonschema.validators import validator_for

    lines = []
    for name, param in declared.items():
        schema = param.schema
        validator = validator_for(schema)(schema, format_checker=FormatChecker())
        for error in sorted(validator.iter_errors(params.get(name)), key=lambda e: list(e.absolute_path)):
            where = ".".join([name, *(str(p) for p in error.absolute_path)])
            lines.append(f"{where}: {error.message}")
    return "\n".join(lines) or None


def checked_request(scope: dict) -> tuple[str, str] | None:
    """(kind, dag_id from the path) for a request whose body this middleware checks: 'trigger' or 'backfill'."""
    if scope.get("type") != "http" or scope.get("method") != "POST":
        return None
    path = scope.get("path", "")
    match = _TRIGGER_PATH.match(path)
    if match:
        return "trigger", match["dag_id"]
    if _BACKFILL_PATH.match(path):
        return "backfill", ""
    return None


def conf_of(kind: str, path_dag_id: str, document: Any) -> tuple[str, Any] | None:
    """(dag_id, conf) a request body asks a run of, or None when it is not a perf DAG's (or not a mapping)."""
    if not isinstance(document, dict):
        return None  # Airflow answers malformed bodies itself
    if kind == "trigger":
        return path_dag_id, document.get("conf")
    dag_id = document.get("dag_id")
    if isinstance(dag_id, str) and _PERF_DAG.match(dag_id):
        return dag_id, document.get("dag_run_conf")
    return None


async def airflow_authorize(scope: dict, dag_id: str) -> bool:
    """Would Airflow let this caller create runs of `dag_id`? (Airflow's own dependency, run ahead of it.)"""
    # Function-local: these exist only inside Airflow's API server, and need its initialised auth manager.
    from fastapi import HTTPException
    from starlette.requests import Request

    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    request = Request(scope)
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials if scheme.lower() == "bearer" else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    try:
        user = await resolve_user_from_token(token)
    except HTTPException:
        return False
    return bool(get_auth_manager().is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN,
                                                     details=DagDetails(id=dag_id), user=user))


class TriggerCheckMiddleware:
    """Pure ASGI middleware: buffers a perf trigger's or backfill's body, checks it, then replays it to Airflow.

    `authorize` decides who gets perfpipe's answer (default: Airflow's own authorization of run creation); when it
    cannot decide (an error), the request goes to Airflow unchecked, which then authorizes and validates it itself.
    """

    def __init__(self, app: Any, authorize: Authorize | None = None) -> None:
        self.app = app
        self.authorize = authorize or airflow_authorize

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        request = checked_request(scope)
        if request is None:
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = await self._problem(scope, request, body)
        if problem is not None:
            payload = json.dumps({"detail": REFUSED + problem}).encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _problem(self, scope: dict, request: tuple[str, str], body: bytes) -> str | None:
        if len(body) > _MAX_BODY:
            return None
        try:
            asked = conf_of(*request, json.loads(body or b"{}"))
        except ValueError:
            return None  # Airflow answers malformed JSON itself
        if asked is None:
            return None
        dag_id, conf = asked
        try:
            if not await self.authorize(scope, dag_id):
                return None  # Airflow answers 401/403 itself
        except Exception:  # noqa: BLE001 - never break Airflow's API: it authorizes and validates on its own
            log.exception("perfpipe trigger check: could not authorize the caller; passing the request on")
            return None
        return refusal(dag_id, conf)
