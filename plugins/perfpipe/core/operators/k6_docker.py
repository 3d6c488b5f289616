"""The k6 task on Docker (runtime: docker): the grafana/k6 image with the same command, env, tags and outputs.

Scripts are mounted read-only at /scripts, the stage's report folder read-write at /reports, so the summary,
HTML report and k6.log land on the host exactly where the local runtime puts them. The container runs as the
worker's uid:gid (the image's own user could not write the host's report folder) on the host network (targets
and InfluxDB are on the host's loopback), is labelled with its testid and is removed afterwards, whatever
happened. Like the local runtime it has its own time limit, and a stop from outside is recorded as `aborted`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.providers.docker.operators.docker import DockerOperator

from perfpipe.core.hooks.influxdb import InfluxDBHook
from perfpipe.core.k6.command import EXIT_EXTERNAL_ABORT, K6Invocation, build_invocation, script_for
from perfpipe.core.k6.run import ON_KILL_GRACE_S, Companions, K6RunCore, OnAbort, RunSetup, RunSpec
from perfpipe.core.model.plan import TestPlan
from perfpipe.core.operators.k6 import literal_plan
from perfpipe.core.operators.links import DEFAULT_GRAFANA_URL, GrafanaRunLink, grafana_run_url
from perfpipe.core.paths import scripts_dir

log = logging.getLogger(__name__)

CONTAINER_SCRIPTS = "/scripts"
CONTAINER_REPORTS = "/reports"
CONTAINER_USER_SCRIPT_DIR = "/user-script"
# Labels on every k6 container, so an operator (or `docker ps --filter label=perfpipe.testid`) can find it.
LABEL_PREFIX = "perfpipe."
# `docker stop` waits this long after SIGTERM (k6 writes its summary and flushes) before SIGKILL.
STOP_GRACE_S = 30


def container_invocation(plan: TestPlan, spec: RunSpec) -> K6Invocation:
    """The k6 invocation as the container sees it; the image's entrypoint is k6 itself."""
    script = script_for(plan, CONTAINER_SCRIPTS)
    if plan.target.get("script"):
        script = f"{CONTAINER_USER_SCRIPT_DIR}/{Path(plan.target['script']).name}"
    return build_invocation(plan, testid=spec.testid, binary="k6", script=script, report_path=CONTAINER_REPORTS,
                            influx=spec.influx, headers=spec.headers, blocked_networks=spec.blocked_networks,
                            prometheus=spec.prometheus)


def k6_mounts(report_dir: Path, plan: TestPlan) -> list:
    # At run time only: the docker client library is not needed to parse a DAG.
    from docker.types import Mount

    mounts = [Mount(target=CONTAINER_SCRIPTS, source=str(scripts_dir()), type="bind", read_only=True),
              Mount(target=CONTAINER_REPORTS, source=str(report_dir.resolve()), type="bind", read_only=False)]
    if plan.target.get("script"):
        mounts.append(Mount(target=CONTAINER_USER_SCRIPT_DIR, source=str(Path(plan.target["script"]).parent),
                            type="bind", read_only=True))
    return mounts


def container_labels(plan: TestPlan, *, testid: str, dag_id: str, run_id: str) -> dict[str, str]:
    return {f"{LABEL_PREFIX}testid": testid, f"{LABEL_PREFIX}dag_id": dag_id, f"{LABEL_PREFIX}run_id": run_id,
            f"{LABEL_PREFIX}test_type": plan.test_type, f"{LABEL_PREFIX}target": plan.target_name}


class K6DockerOperator(DockerOperator):
    """DockerOperator running grafana/k6 for a TestPlan (`plan`: an XComArg, a TestPlan or its JSON data, as
    K6Operator); the container is removed afterwards. `run_setup`, `companions`, `on_abort`: perfpipe.core.k6.run."""

    template_fields = ("plan", *DockerOperator.template_fields)
    ui_color = "#7d64ff"
    operator_extra_links = (GrafanaRunLink(),)

    def __init__(self, *, plan: Any, image: str, influxdb_conn_id: str = InfluxDBHook.default_conn_name,
                 run_setup: RunSetup | None = None, companions: Companions | None = None,
                 on_abort: OnAbort | None = None, grafana_url: str = DEFAULT_GRAFANA_URL, **kwargs: Any):
        kwargs.setdefault("network_mode", "host")  # targets and InfluxDB are on the host's loopback
        kwargs.setdefault("auto_remove", "force")
        kwargs.setdefault("mount_tmp_dir", False)
        kwargs.setdefault("tty", False)
        # DockerOperator returns the container's output lines: they become the stage's k6.log.
        kwargs.setdefault("xcom_all", True)
        super().__init__(image=image, command=None, **kwargs)
        self.plan = literal_plan(plan)
        self.runtime = "docker"
        self.influxdb_conn_id = influxdb_conn_id
        self.run_setup, self.companions, self.on_abort = run_setup, companions, on_abort
        self.grafana_base_url = grafana_url
        self.grafana_url = ""
        self._run: K6RunCore | None = None
        self._stop_requested = threading.Event()
        self._timed_out = False

    def configure(self, context: dict[str, Any]) -> tuple[TestPlan, RunSpec]:
        """Fill command, env, mounts, user and labels for this try; split secrets into private_environment."""
        self._run = K6RunCore(setup=self.run_setup, companions=self.companions, on_abort=self.on_abort)
        plan, spec = self._run.start(self.plan, context, InfluxDBHook(self.influxdb_conn_id))
        invocation = container_invocation(plan, spec)
        self.command = invocation.argv[1:]
        self.environment = {k: v for k, v in invocation.env.items() if k not in invocation.secret_env_keys}
        # DockerOperator sends `_private_environment` to the container (kept out of templates and logs).
        self._private_environment = {k: v for k, v in invocation.env.items() if k in invocation.secret_env_keys}
        self.mounts = k6_mounts(spec.report_dir, plan)
        if self.user is None:
            # grafana/k6 runs as its own uid 12345, which cannot write the worker's report folder; as the
            # worker's user the summary and report are also owned by it on the host.
            self.user = f"{os.getuid()}:{os.getgid()}"
        ti = context["ti"]
        self.labels = container_labels(plan, testid=spec.testid, dag_id=ti.dag_id, run_id=ti.run_id)
        self.container_name = None
        return plan, spec

    def execute(self, context: dict[str, Any]) -> dict[str, Any]:
        # At run time only: the provider's exception class is needed once a container ran.
        from airflow.providers.docker.exceptions import DockerContainerFailedException

        plan, spec = self.configure(context)
        run = self._run
        log.info("%s test against %s (%s) in %s, testid %s, about %.0fs", plan.test_type,
                 plan.target_name, plan.target["base_url"], self.image, spec.testid,
                 plan.expected_duration_s)
        self.grafana_url = grafana_run_url(spec.testid, run.started, None, self.grafana_base_url)
        # The same limit as the local runtime's watchdog: past it, k6 is stopped and the run counts as aborted.
        watchdog = threading.Timer(spec.timeout_s, self._stop_on_timeout)
        watchdog.daemon = True
        watchdog.start()
        exit_code, lines = 0, []
        try:
            with run.companions():  # the chaos fault and memory sampler, as in the local task
                lines = super().execute(context) or []
        except DockerContainerFailedException as exc:
            # DockerOperator raises on any non-zero exit; 99 (script thresholds) is still a measured run.
            lines = exc.logs or []
            exit_code = _exit_code_from(exc)
            if exit_code is None:
                raise
        except Exception as exc:
            # Stopped from outside: on_kill removes the container while DockerOperator's own cleanup tries to
            # remove it too, and the engine answers 409 (removal in progress) or 404 (gone). The stop is the result.
            if not (self._stop_requested.is_set() and getattr(exc, "status_code", None) in (404, 409)):
                raise
            log.info("container already removed by the stop: %s", exc)
            exit_code = EXIT_EXTERNAL_ABORT
        finally:
            watchdog.cancel()
            _write_log(run.log_path, lines)
        self.grafana_url = grafana_run_url(spec.testid, run.started, datetime.now(timezone.utc),
                                           self.grafana_base_url)
        wall_s = (datetime.now(timezone.utc) - run.started).total_seconds()
        return run.finish(exit_code=exit_code, stopped=self._stop_requested.is_set(), timed_out=self._timed_out,
                          wall_s=wall_s)

    def stop_container(self, grace_s: float = STOP_GRACE_S) -> None:
        """`docker stop`: SIGTERM (k6 ends gracefully, exit 105, summary written), SIGKILL after the grace."""
        self._stop_requested.set()
        container = getattr(self, "container", None)
        if not container:
            return
        try:
            self.cli.stop(container["Id"], timeout=max(1, int(grace_s)))
        except Exception as exc:  # already gone: nothing left to stop
            log.info("could not stop container %s: %s", container["Id"][:12], exc)

    def _stop_on_timeout(self) -> None:
        log.error("k6 ran past its limit: stopping its container")
        self._timed_out = True
        self.stop_container()

    def on_kill(self) -> None:
        """Airflow stops the task: stop and remove the container within its SIGKILL window, record `aborted`."""
        if self._run is not None:
            self._run.stop_companions()  # first: no fault stays injected, whatever happens next
        self.stop_container(grace_s=ON_KILL_GRACE_S)
        container = getattr(self, "container", None)
        if container and self.auto_remove == "force":
            try:
                self.cli.remove_container(container["Id"], force=True)
            except Exception as exc:
                log.info("container %s already removed: %s", container["Id"][:12], exc)
        if self._run is not None:
            self._run.abort()


def _write_log(path: Path, lines: list[str] | str) -> None:
    if isinstance(lines, str):
        lines = [lines]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _exit_code_from(exc: Exception) -> int | None:
    match = re.search(r"StatusCode['\"]?:\s*(\d+)", str(exc)) or re.search(r"exit code (\d+)", str(exc))
    return int(match.group(1)) if match else None
