"""perf_pipeline: the Airflow DAG of the decision tree.

smoke passed? -> load; performance targets met? -> stress; breaking point acceptable? -> spike -> chaos;
resilience validated? -> (optional soak) -> ready_to_deploy. A failed gate ends in its remediation outcome
(fix_issues, optimize_system, scale_system, improve_failover), which fails the run with its evidence.
"""

from perfpipe.entry.dag_factory import build_pipeline_dag

dag = build_pipeline_dag()
