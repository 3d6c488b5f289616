"""perf_spike: the k6 spike test as its own Airflow DAG (validate -> run_k6 -> evaluate -> record -> verdict)."""

from perfpipe.entry.dag_factory import build_test_dag

dag = build_test_dag("spike")
