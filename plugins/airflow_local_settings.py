"""Airflow cluster policy for perfpipe (Airflow imports this module from the plugins folder on sys.path)."""


def task_instance_mutation_hook(task_instance, dag_run=None):
    """Route each k6 task into its target's one-slot pool, chosen from the run's conf (see perfpipe.app.pools)."""
    from perfpipe.app.pools import pool_for

    pool = pool_for(task_instance.task_id, getattr(dag_run, "conf", None))
    if pool:
        task_instance.pool = pool
