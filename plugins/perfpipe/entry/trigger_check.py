"""The REST API's (and so the UI's) trigger of a perf DAG refuses bad Params with perfpipe's own message.

Airflow checks a trigger's conf against the Params' JSON schema and answers 400 with jsonschema's text: the
failing rule followed by a dump of the schema. This root middleware of the API server (registered by
perfpipe_plugin) checks the conf of `POST /api/v2/dags/perf_*/dagRuns` first, with the same model the CLI's
pre-flight and the tasks use, and answers 400 with one line per problem, naming the field. It only reads the
config files: no DNS, no InfluxDB, no k6 (those checks stay in the run's first task).
"""

from __future__ import annotations

import json
import re
from typing import Any

from perfpipe import TEST_TYPES

_TRIGGER_PATH = re.compile(r"^/api/v2/dags/(?P<dag_id>perf_[A-Za-z0-9_]+)/dagRuns/?$")
# A body bigger than this is refused by Airflow's own limits or the schema; it is not parsed twice here.
_MAX_BODY = 4 * 1024 * 1024


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
    """perfpipe's message for a trigger conf it refuses, or None (the run may be created)."""
    # the API server loads this middleware: the checks only for a perf DAG's trigger
    from perfpipe.app.stage import check_params
    # the API server loads this middleware: the checks only for a perf DAG's trigger
    from perfpipe.core.errors import InputError

    stages = stages_of(dag_id)
    if not stages or conf is None:
        return None
    if not isinstance(conf, dict):
        return "conf: expected a mapping of params (target, inline_target, profile, overrides, ...)"
    # the API server loads this middleware: the DAG factory (Airflow SDK) only when needed
    from perfpipe.entry.dag_factory import perf_params

    # Airflow fills what the conf leaves out from the Params' defaults: so does this check.
    params = {**{name: param.value for name, param in perf_params().items()}, **conf}
    try:
        for stage in stages:
            check_params(stage, params)
    except InputError as exc:
        return str(exc)
    return None


class TriggerCheckMiddleware:
    """Pure ASGI middleware: buffers the trigger request's body, checks it, then replays it to Airflow."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        match = _TRIGGER_PATH.match(scope.get("path", "")) if scope.get("type") == "http" else None
        if not match or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = None
        if len(body) <= _MAX_BODY:
            try:
                document = json.loads(body or b"{}")
            except ValueError:
                document = None  # Airflow answers malformed JSON itself
            if isinstance(document, dict):
                problem = refusal(match["dag_id"], document.get("conf"))
        if problem is not None:
            payload = json.dumps({"detail": f"refused before any load: {problem}"}).encode()
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
