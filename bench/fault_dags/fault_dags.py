"""DAGs for bench/fault_loops.py and the overlap test: the shipped perf_chaos and perf_smoke, plus copies of
perf_chaos whose k6 task has a short execution_timeout (3-12 s), so Airflow's own timeout can end a run at a
chosen moment."""

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from perfpipe.entry.dag_factory import add_test_stage, build_test_dag, perf_params

TIMEOUTS_S = range(3, 13)

perf_chaos = build_test_dag("chaos")
perf_smoke = build_test_dag("smoke")

for seconds in TIMEOUTS_S:
    with DAG(dag_id=f"perf_timeout_{seconds}s", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
             catchup=False, max_active_runs=1, params=perf_params(), tags=["perfpipe", "fault-loop"],
             default_args={"owner": "perfpipe", "retries": 0}) as dag:
        add_test_stage("chaos")
    dag.get_task("run_k6").execution_timeout = timedelta(seconds=seconds)
    globals()[dag.dag_id] = dag
