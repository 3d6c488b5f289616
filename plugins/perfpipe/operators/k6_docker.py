"""The k6 task on Docker (runtime: docker): the grafana/k6 image with the same command, env, tags and outputs.

Scripts are mounted read-only at /scripts, the stage's report folder read-write at /reports, so the summary
and HTML report land on the host exactly where the local runtime puts them.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.providers.docker.operators.docker import DockerOperator

from perfpipe.k6.command import EXIT_EXTERNAL_ABORT, LOG_FILE
from perfpipe.operators.k6 import check_exit_code, record_aborted, run_result, stage_context, test_duration
from perfpipe.operators.links import GrafanaRunLink, grafana_run_url

log = logging.getLogger(__name__)

CONTAINER_SCRIPTS = "/scripts"
CONTAINER_REPORTS = "/reports"
CONTAINER_USER_SCRIPT_DIR = "/user-script"


def container_invocation(plan: dict[str, Any], *, testid: str, headers: dict[str, str]):
    """The k6 invocation as the container sees it; the image's entrypoint is k6 itself."""
    from perfpipe.hooks.influxdb import influx_settings
    from perfpipe.k6.command import build_invocation, script_for
    from perfpipe.stage import blocked_networks

    script = script_for(plan, CONTAINER_SCRIPTS)
    if plan["target"].get("script"):
        script = f"{CONTAINER_USER_SCRIPT_DIR}/{Path(plan['target']['script']).name}"
    return build_invocation(plan, testid=testid, binary="k6", script=script, report_path=CONTAINER_REPORTS,
                            influx=influx_settings(), headers=headers,
                            blocked_networks=blocked_networks(plan))


def k6_mounts(report_dir: Path, plan: dict[str, Any]) -> list:
    from docker.types import Mount

    from perfpipe.paths import scripts_dir

    mounts = [Mount(target=CONTAINER_SCRIPTS, source=str(scripts_dir()), type="bind", read_only=True),
              Mount(target=CONTAINER_REPORTS, source=str(report_dir.resolve()), type="bind", read_only=False)]
    if plan["target"].get("script"):
        mounts.append(Mount(target=CONTAINER_USER_SCRIPT_DIR, source=str(Path(plan["target"]["script"]).parent),
                            type="bind", read_only=True))
    return mounts


class K6DockerOperator(DockerOperator):
    """DockerOperator running grafana/k6 for the plan made by `plan_task_id`; container removed afterwards."""

    ui_color = "#7d64ff"
    operator_extra_links = (GrafanaRunLink(),)

    def __init__(self, *, plan_task_id: str, image: str, **kwargs: Any):
        kwargs.setdefault("network_mode", "host")  # targets and InfluxDB are on the host's loopback
        kwargs.setdefault("auto_remove", "force")
        kwargs.setdefault("mount_tmp_dir", False)
        kwargs.setdefault("tty", False)
        super().__init__(image=image, command=None, **kwargs)
        self.plan_task_id = plan_task_id
        self.grafana_url = ""
        self._running: dict[str, Any] = {}

    def configure(self, context: dict[str, Any]) -> tuple[dict, str, Path]:
        """Fill command, env and mounts for this try; split secrets into private_environment."""
        from perfpipe.targets import resolve_header_values

        plan, _dag_id, _run_id, testid, report_dir = stage_context(context, self.plan_task_id)
        invocation = container_invocation(plan, testid=testid,
                                          headers=resolve_header_values(plan["target"].get("headers") or {}))
        self.command = invocation.argv[1:]
        self.environment = {k: v for k, v in invocation.env.items() if k not in invocation.secret_env_keys}
        # DockerOperator sends `_private_environment` to the container (kept out of templates and logs).
        self._private_environment = {k: v for k, v in invocation.env.items() if k in invocation.secret_env_keys}
        self.mounts = k6_mounts(report_dir, plan)
        self.container_name = None
        return plan, testid, report_dir

    def execute(self, context: dict[str, Any]) -> dict[str, Any]:
        from airflow.exceptions import AirflowException

        plan, testid, report_dir = self.configure(context)
        started = datetime.now(timezone.utc)
        self.grafana_url = grafana_run_url(testid, started, None)
        self._running = {"plan": plan, "testid": testid, "report_dir": report_dir, "started": started,
                         "dag_id": context["ti"].dag_id, "run_id": context["ti"].run_id, "context": context}
        exit_code = 0
        try:
            super().execute(context)
        except AirflowException as exc:
            # DockerOperator raises on any non-zero exit; 99 (script thresholds) is still a measured run.
            exit_code = _exit_code_from(exc)
            if exit_code is None:
                raise
        self.grafana_url = grafana_run_url(testid, started, datetime.now(timezone.utc))
        aborted = exit_code == EXIT_EXTERNAL_ABORT
        check_exit_code(exit_code, aborted, report_dir / LOG_FILE)
        wall_s = (datetime.now(timezone.utc) - started).total_seconds()
        return run_result(testid=testid, report_dir=report_dir, exit_code=exit_code, started=started,
                          aborted=aborted, timed_out=False, test_duration_s=test_duration(report_dir, wall_s))

    def on_kill(self) -> None:
        """Stop the container (DockerOperator's on_kill), then record the stage as aborted, as the local runtime."""
        super().on_kill()
        record_aborted(self._running)


def _exit_code_from(exc: Exception) -> int | None:
    import re

    match = re.search(r"StatusCode['\"]?:\s*(\d+)", str(exc)) or re.search(r"exit code (\d+)", str(exc))
    return int(match.group(1)) if match else None
