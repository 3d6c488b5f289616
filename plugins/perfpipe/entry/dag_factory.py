"""DAGs built from shared pieces: one `test stage` (validate -> run_k6 -> evaluate -> record -> verdict) per
test type, used alone by perf_<type> DAGs and composed by the decision-tree pipeline.

Parse-time cost: reads three small YAML files under config/; no network, no database, no k6.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, Param, task

from perfpipe import TEST_TYPES
from perfpipe.app.config import PROFILES, max_run_seconds, read_config_yaml, settings
from perfpipe.app.run_identity import DAG_START_DATE
from perfpipe.core.errors import InputError
from perfpipe.core.model.overrides import overrides_json_schema
from perfpipe.core.model.plan import StageResult, TestPlan
from perfpipe.core.model.target import inline_target_json_schema
from perfpipe.core.operators.k6 import K6Operator
from perfpipe.core.operators.links import DEFAULT_GRAFANA_URL

# Generated from the model that the CLI's pre-flight and the tasks validate with: one set of rules.
OVERRIDES_SCHEMA: dict[str, Any] = overrides_json_schema()
TARGET_OBJECT_SCHEMA: dict[str, Any] = inline_target_json_schema()


def perf_params(default_profile: str = "standard", default_target: str | None = None) -> dict[str, Param]:
    """The Params form shared by every perf DAG: validated by JSON schema in the UI, REST API and CLI."""
    # when a Params form is built: targets.yaml is read then, not at import
    from perfpipe.app.targets import configured_targets

    targets = sorted(configured_targets()) or ["demo"]
    return {
        "target": Param(default_target or targets[0], type="string", enum=targets,
                        description="A target configured in config/targets.yaml"),
        "inline_target": Param(None, **TARGET_OBJECT_SCHEMA),
        "profile": Param(default_profile, type="string", enum=list(PROFILES),
                         description="quick = seconds-long shapes; standard = the full test matrix"),
        "overrides": Param({}, **OVERRIDES_SCHEMA),
    }


def chaos_scenario_param() -> Param:
    """perf_chaos and perf_pipeline: which of the target's fault scenarios the chaos test injects."""
    return Param(None, type=["string", "null"], pattern=r"^[A-Za-z0-9_.-]+$",
                 description="chaos: the target's fault scenario to inject (e.g. cache_failure, db_failure, "
                             "network_fault); empty = the target's default_scenario")


def dag_params(dag_id: str) -> dict[str, Param]:
    """The Params of a perf DAG (perf_<test_type> or perf_pipeline): its trigger form and what the REST API's
    trigger check (perfpipe.entry.trigger_check) knows a conf may hold."""
    from perfpipe.app.pipeline import INCLUDE_SOAK  # only perf_pipeline's Params need the decision tree

    params = perf_params()
    if dag_id in ("perf_chaos", "perf_pipeline"):
        params["chaos_scenario"] = chaos_scenario_param()
    if dag_id == "perf_pipeline":
        params[INCLUDE_SOAK] = Param(False, type="boolean", description="run the (long) soak stage before ready")
    return params


def logical_date_of(context: dict[str, Any]) -> datetime:
    dag_run = context["dag_run"]
    return dag_run.logical_date or dag_run.run_after or datetime.now(timezone.utc)


CHECKED_XCOM_KEY = "checked"


def add_test_stage(test_type: str, runtime: str | None = None, with_verdict: bool = True,
                   first_stage: bool = True, pipeline_first: str | None = None):
    """validate -> run_k6 -> evaluate -> record [-> verdict] for one test type, in the current DAG or TaskGroup.

    Returns (first_task, last_task) so callers can chain stages. The pipeline replaces `verdict` by its gate.
    `pipeline_first`: in a pipeline, its first stage, whose `validate` checks the whole run once.
    """

    @task(task_id="validate")
    def validate(**context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException  # at task run time: DAG parsing stays light

        # at task run time: parsing a DAG file stays light (no InfluxDB, results or k6 modules)
        from perfpipe.app.stage import prepare_plan, prepare_run, run_stages

        params = dict(context["params"])
        try:
            if pipeline_first is None:
                plan = prepare_plan(test_type, params)
            elif first_stage:
                # Validate once: every stage this run may reach is checked now, before any load; the later
                # stages reuse what was checked (XCom `checked`) instead of checking it again.
                plans, checked = prepare_run(run_stages("pipeline", bool(params.get("include_soak"))), params)
                plan = plans[test_type]
                context["ti"].xcom_push(key=CHECKED_XCOM_KEY, value=checked)
            else:
                checked = context["ti"].xcom_pull(task_ids=f"{pipeline_first}.validate", key=CHECKED_XCOM_KEY)
                plan = prepare_plan(test_type, params, checked=checked)
        except InputError as exc:
            # Bad input never improves on retry: fail now, before any load, naming the field.
            raise AirflowFailException(f"refused before any load: {exc}") from None
        # Nothing earlier is cleared here: `record` replaces the earlier result of the same (dag, target, test,
        # date) only once this attempt has written its own, so an attempt that dies keeps the earlier verdict.
        return plan.to_json_data()  # XCom carries JSON; the next tasks read it back as a TestPlan

    @task(task_id="evaluate")
    def evaluate(plan: dict[str, Any], run: dict[str, Any], **context: Any) -> dict[str, Any]:
        from perfpipe.app.stage import evaluate_stage  # at task run time: DAG parsing stays light

        stage = evaluate_stage(TestPlan.from_json_data(plan), run, dag_id=context["dag"].dag_id,
                               run_id=context["run_id"], logical_date=logical_date_of(context))
        return stage.to_json_data()  # XCom carries JSON; record reads it back as a StageResult

    @task(task_id="record")
    def record(stage: dict[str, Any], **context: Any) -> dict[str, Any]:
        from perfpipe.app.stage import record_stage  # at task run time: DAG parsing stays light

        return record_stage(StageResult.from_json_data(stage), logical_date_of(context)).to_json_data()

    @task(task_id="verdict")
    def verdict(stage: dict[str, Any], **context: Any) -> dict[str, Any]:
        from perfpipe.app.stage import enforce_verdict  # at task run time: DAG parsing stays light

        return enforce_verdict(context["dag"].dag_id, context["run_id"], stage["test_type"]).to_json_data()

    plan = validate()
    run_k6 = make_k6_task(test_type, plan=plan, runtime=runtime)  # the XComArg makes validate >> run_k6
    recorded = record(evaluate(plan, run_k6.output))
    final = verdict(recorded) if with_verdict else recorded
    return plan.operator, final.operator


def make_k6_task(test_type: str, *, plan: Any, runtime: str | None = None):
    """perfpipe's k6 task for `plan` (an XComArg): the configured runtime, with perfpipe's run setup, companions
    (live rollup, memory sampler, chaos fault), aborted-stage recording and Grafana."""
    conf = settings()
    runtime = runtime or conf["runtime"]
    common = {"task_id": "run_k6", "plan": plan, "execution_timeout": execution_timeout(test_type), "retries": 0,
              "run_setup": run_setup, "companions": run_companions, "on_abort": record_aborted_stage,
              "grafana_url": (conf.get("grafana") or {}).get("url") or DEFAULT_GRAFANA_URL}
    if runtime == "docker":
        # only the docker runtime loads the Docker provider
        from perfpipe.core.operators.k6_docker import K6DockerOperator

        return K6DockerOperator(image=conf["docker"]["image"],
                                network_mode=conf["docker"].get("network_mode", "host"), **common)
    return K6Operator(**common)


def run_setup(plan: Any, context: dict[str, Any], hook: Any) -> Any:
    """perfpipe.app.k6_setup.perfpipe_run_setup, imported when the task runs."""
    # At run time: parsing a DAG file must not load the results and k6 runner modules.
    from perfpipe.app.k6_setup import perfpipe_run_setup

    return perfpipe_run_setup(plan, context, hook)


def run_companions(plan: Any, testid: str) -> Any:
    """perfpipe.app.companions.RunCompanions, imported when the task runs."""
    # At run time: parsing a DAG file must not load the companions (InfluxDB, chaos).
    from perfpipe.app.companions import RunCompanions

    return RunCompanions(plan, testid)


def record_aborted_stage(plan: Any, run: dict[str, Any], context: dict[str, Any]) -> None:
    """The k6 operators' on_abort: an `aborted` perf_results point with whatever k6 measured before the stop."""
    # At run time: parsing a DAG file must not load the stage's InfluxDB and k6 modules.
    from perfpipe.app.stage import evaluate_stage, record_stage

    ti = context["ti"]
    logical_date = logical_date_of(context)
    stage = evaluate_stage(plan, run, dag_id=ti.dag_id, run_id=ti.run_id, logical_date=logical_date)
    record_stage(stage, logical_date)


def execution_timeout(test_type: str) -> timedelta:
    """Airflow's outer bound (k6 also has its own, tighter limit; plans that would not fit are refused)."""
    return timedelta(seconds=max_run_seconds(test_type))


def schedule_for(test_type: str) -> str | None:
    return ((read_config_yaml("perfpipe.yaml") or {}).get("schedules") or {}).get(test_type)


def build_test_dag(test_type: str) -> DAG:
    """perf_<test_type>: one test stage, on the schedule configured for the type, triggerable with Params."""
    if test_type not in TEST_TYPES:
        raise ValueError(f"unknown test type {test_type!r}")
    with DAG(
        dag_id=f"perf_{test_type}",
        description=f"k6 {test_type} test: validate -> run k6 -> evaluate gates from InfluxDB -> record",
        schedule=schedule_for(test_type),
        start_date=DAG_START_DATE,
        catchup=False,
        max_active_runs=1,
        params=dag_params(f"perf_{test_type}"),
        tags=["perfpipe", test_type],
        doc_md=__doc__,
        default_args={"owner": "perfpipe", "retries": 0},
    ) as dag:
        add_test_stage(test_type)
    return dag


def build_pipeline_dag(dag_id: str = "perf_pipeline") -> DAG:
    """The decision tree as one DAG, generated from perfpipe.app.pipeline.TREE: a test stage and a gate per row; each
    gate reads its stage's result from InfluxDB and follows the row's yes or no branch (labelled with the answer)
    to the next stage or an outcome, through the row's edge task where it names one. Remediations fail the run with
    their evidence."""
    from airflow.providers.standard.operators.empty import EmptyOperator  # only the pipeline DAG needs it
    from airflow.sdk import Label, TaskGroup  # only the pipeline DAG needs it

    from perfpipe.app import pipeline  # only the pipeline DAG needs it
    params = dag_params("perf_pipeline")
    with DAG(
        dag_id=dag_id,
        description="smoke -> load -> stress -> spike -> chaos -> (soak) -> ready, gated at every step",
        schedule=schedule_for("pipeline"),
        start_date=DAG_START_DATE,
        catchup=False,
        max_active_runs=1,
        params=params,
        tags=["perfpipe", "pipeline"],
        doc_md=f"{pipeline.__doc__}\n```\n{pipeline.render()}\n```\n",
        default_args={"owner": "perfpipe", "retries": 0},
    ) as dag:
        entries, gates = {}, {}
        for row in pipeline.TREE:
            with TaskGroup(row.stage):
                entries[row.stage], recorded = add_test_stage(row.stage, with_verdict=False,
                                                              first_stage=row is pipeline.TREE[0],
                                                              pipeline_first=pipeline.STAGES[0])
            gates[row.stage] = gate_task(row)
            recorded >> gates[row.stage]
        outcomes = {name: outcome_task(name) for name in pipeline.OUTCOMES}
        for row in pipeline.TREE:
            for answer, branch in row.branches():
                target = entries[branch.to] if branch.to in entries else outcomes[branch.to]
                if branch.edge:
                    gates[row.stage] >> Label(answer) >> EmptyOperator(task_id=branch.edge) >> target
                else:
                    gates[row.stage] >> Label(answer) >> target
        # A teardown: it runs whatever happened and never decides the run's state (the outcomes do).
        report = pipeline_report_task().as_teardown()
        list(outcomes.values()) >> report
    return dag


def gate_task(row):
    """The branch task of one row of perfpipe.app.pipeline.TREE: `<stage>_gate`, answering the row's question."""
    from airflow.sdk import task as task_decorator  # only the pipeline DAG needs it

    from perfpipe.app import pipeline  # only the pipeline DAG needs it
    stage = row.stage

    @task_decorator.branch(task_id=f"{stage}_gate", doc_md=f"**{row.question}**")
    def gate(**context: Any) -> str:
        from airflow.sdk.exceptions import AirflowFailException  # at task run time: DAG parsing stays light

        from perfpipe.app.influx import influxdb_hook  # at task run time: DAG parsing stays light
        from perfpipe.app.results import read_results  # at task run time: DAG parsing stays light

        results = {s.test_type: s for s in read_results(influxdb_hook(), context["dag"].dag_id, context["run_id"])}
        try:
            choice = pipeline.decide(stage, results.get(stage),
                                     bool(context["params"].get(pipeline.INCLUDE_SOAK)))
        except pipeline.InconclusiveStage as exc:
            raise AirflowFailException(f"infrastructure, not a verdict: {exc}") from None
        return pipeline.branch_task_id(stage, choice)

    return gate()


def outcome_task(outcome: str):
    from airflow.sdk import TriggerRule  # only the pipeline DAG needs it
    from airflow.sdk import task as task_decorator  # only the pipeline DAG needs it

    @task_decorator(task_id=outcome, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def record_outcome(**context: Any) -> dict[str, Any]:
        from perfpipe.app.outcomes import conclude  # at task run time: DAG parsing stays light

        return conclude(outcome, context["dag"].dag_id, context["run_id"], logical_date_of(context))

    return record_outcome()


def pipeline_report_task():
    from airflow.sdk import TriggerRule  # only the pipeline DAG needs it
    from airflow.sdk import task as task_decorator  # only the pipeline DAG needs it

    @task_decorator(task_id="report", trigger_rule=TriggerRule.ALL_DONE)
    def report(**context: Any) -> str:
        from perfpipe.app.report import write_pipeline_report  # at task run time: DAG parsing stays light

        return str(write_pipeline_report(context["dag"].dag_id, context["run_id"]))

    return report()
