"""perf_pipeline: the decision tree as an Airflow DAG, generated from perfpipe.app.pipeline.TREE.

smoke:  smoke passed?               yes                  -> load
                                    no                   -> fix_issues
load:   performance targets met?    yes                  -> stress
                                    no                   -> optimize_system  (via load_targets_missed)
stress: breaking point acceptable?  yes                  -> spike
                                    no                   -> scale_system
spike:  recovers from a spike?      yes                  -> chaos
                                    no                   -> improve_failover  (via spike_not_resilient)
chaos:  resilience validated?       yes if include_soak  -> soak
                                    yes, otherwise       -> ready_to_deploy  (via chaos_resilient)
                                    no                   -> improve_failover  (via chaos_not_resilient)
soak:   stable over time?           yes                  -> ready_to_deploy  (via soak_stable)
                                    no                   -> optimize_system  (via soak_degraded)

A stage runs validate -> run_k6 -> evaluate -> record, then its gate answers the question. A remediation outcome
fails the run with its evidence; `report` (a teardown) writes the pipeline report whatever happened.
(This table is perfpipe.app.pipeline.render(); tests/unit/perfpipe/app/test_pipeline.py keeps the two equal.)
"""

from perfpipe.entry.dag_factory import build_pipeline_dag

dag = build_pipeline_dag()
