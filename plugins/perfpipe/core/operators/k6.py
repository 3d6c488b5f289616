"""The k6 task: runs one planned test with the local k6 binary (runtime: local).

    validate = make_plan()                      # a @task returning TestPlan.to_json_data()
    run = K6Operator(task_id="run_k6", plan=validate.output)

The plan arrives as an XComArg (or a TestPlan / its JSON data): the dependency on the task that made it comes
with it. The run itself is perfpipe.core.k6.run.K6RunCore, shared with the Docker runtime.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import BaseOperator

from perfpipe.core.hooks.influxdb import InfluxDBHook
from perfpipe.core.k6.command import LOG_FILE, build_invocation, k6_binary, script_for
from perfpipe.core.k6.run import ON_KILL_GRACE_S, Companions, K6RunCore, OnAbort, RunSetup, plan_of
from perfpipe.core.model.plan import TestPlan
from perfpipe.core.operators.links import DEFAULT_GRAFANA_URL, GrafanaRunLink, grafana_run_url
from perfpipe.core.paths import scripts_dir

log = logging.getLogger(__name__)

RUNTIMES = ("local",)


def literal_plan(plan: Any) -> Any:
    """A plan given as data is checked now (and kept as a TestPlan: Jinja must not render its `{{int:..}}`
    request templates); an XComArg or a template string is resolved when the task runs."""
    return plan_of(plan) if isinstance(plan, dict) else plan


class K6Operator(BaseOperator):
    """Run a TestPlan with the local k6 binary, in its own process group.

    k6's output streams into the task log; `--summary-export` JSON and the HTML report land in the run's report
    folder. On kill or timeout the whole k6 process group is ended and `on_abort` is called.

    :param plan: the TestPlan: an XComArg (`validate.output`), a TestPlan or its JSON data. Templated.
    :param runtime: "local" (the Docker runtime is K6DockerOperator).
    :param influxdb_conn_id: the Connection k6 writes its samples to (unless `setup` supplies settings).
    :param run_setup, companions, on_abort: see perfpipe.core.k6.run; defaults work without perfpipe's config.
    :param grafana_url: where the "Grafana: k6 run" link points.
    """

    template_fields = ("plan",)
    ui_color = "#7d64ff"
    operator_extra_links = (GrafanaRunLink(),)

    def __init__(self, *, plan: Any, runtime: str = "local",
                 influxdb_conn_id: str = InfluxDBHook.default_conn_name, run_setup: RunSetup | None = None,
                 companions: Companions | None = None, on_abort: OnAbort | None = None,
                 grafana_url: str = DEFAULT_GRAFANA_URL, **kwargs: Any):
        super().__init__(**kwargs)
        if runtime not in RUNTIMES:
            raise ValueError(f"K6Operator runs k6 locally (runtime 'local'), not {runtime!r}: "
                             "use perfpipe.core.operators.k6_docker.K6DockerOperator for 'docker'")
        self.plan = literal_plan(plan)
        self.runtime = runtime
        self.influxdb_conn_id = influxdb_conn_id
        self.run_setup, self.companions, self.on_abort = run_setup, companions, on_abort
        self.grafana_base_url = grafana_url
        self.grafana_url = ""
        self._process = None
        self._run: K6RunCore | None = None

    def execute(self, context: dict[str, Any]) -> dict[str, Any]:
        # At run time only: parsing a DAG with this operator does not load the process runner.
        from perfpipe.core.k6.runner import LocalK6Process

        self._run = run = K6RunCore(setup=self.run_setup, companions=self.companions, on_abort=self.on_abort)
        plan, spec = run.start(self.plan, context, InfluxDBHook(self.influxdb_conn_id))
        invocation = local_invocation(plan, spec)
        log.info("%s test against %s (%s), testid %s, about %.0fs", plan.test_type, plan.target_name,
                 plan.target["base_url"], spec.testid, plan.expected_duration_s)
        self.grafana_url = grafana_run_url(spec.testid, run.started, None, self.grafana_base_url)
        self._process = LocalK6Process(invocation, spec.report_dir / LOG_FILE, timeout_s=spec.timeout_s)
        with run.companions():
            outcome = self._process.run()
        self.grafana_url = grafana_run_url(spec.testid, run.started, datetime.now(timezone.utc),
                                           self.grafana_base_url)
        return run.finish(exit_code=outcome.exit_code, stopped=outcome.aborted, timed_out=outcome.timed_out,
                          wall_s=outcome.duration_s)

    def on_kill(self) -> None:
        """Airflow stops the task (mark failed, timeout, SIGTERM): end k6 gracefully, report the run aborted."""
        if self._run is not None:
            self._run.stop_companions()  # first: no fault stays injected, whatever happens next
        if self._process is None:
            return
        log.warning("task killed: stopping k6 (pid %s) and its process group", self._process.pid)
        # Airflow's supervisor escalates to SIGKILL 5 s after SIGTERM: stop k6 and record the run before that.
        self._process.stop(grace_s=ON_KILL_GRACE_S)
        if self._run is not None:
            self._run.abort()


def local_invocation(plan: TestPlan, spec):
    """The k6 command line of the local runtime: the venv's k6, the bundled scripts, host paths."""
    return build_invocation(plan, testid=spec.testid, binary=k6_binary(),
                            script=script_for(plan, str(scripts_dir())), report_path=str(spec.report_dir),
                            influx=spec.influx, headers=spec.headers, blocked_networks=spec.blocked_networks,
                            prometheus=spec.prometheus)
