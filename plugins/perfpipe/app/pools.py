"""One Airflow pool per target, one slot: no two load-generating tasks ever hit the same target at once.

The pool of a k6 task depends on the run's target, a Param, so it is set when the task instance is created, by
the `task_instance_mutation_hook` in plugins/airflow_local_settings.py (Airflow's hook for routing by
dag_run.conf). Pools must exist before tasks use them: `python -m perfpipe.app.pools sync` (the CLI does it for its
embedded Airflow) creates one per configured target plus one shared by all inline targets.
"""

from __future__ import annotations

import sys
from typing import Any

POOL_PREFIX = "perf_target_"
INLINE_POOL = f"{POOL_PREFIX}inline"
LOAD_TASK_ID = "run_k6"


def pool_name(target_name: str) -> str:
    return f"{POOL_PREFIX}{target_name}"


def run_target_name(conf: dict[str, Any] | None) -> str | None:
    """The configured target a run loads, None for an inline target (from the run's conf or the default)."""
    # the cluster policy imports this module in every Airflow process: targets load when a run is routed
    from perfpipe.app.targets import configured_targets

    conf = conf or {}
    if conf.get("inline_target"):
        return None
    return conf.get("target") or (sorted(configured_targets()) or [None])[0]


def pool_for(task_id: str, conf: dict[str, Any] | None) -> str | None:
    """The pool a task instance must use, or None to leave it alone (only k6 tasks generate load)."""
    if task_id != LOAD_TASK_ID and not task_id.endswith(f".{LOAD_TASK_ID}"):
        return None
    name = run_target_name(conf)
    return pool_name(name) if name else INLINE_POOL


def wanted_pools() -> dict[str, str]:
    # the cluster policy imports this module in every Airflow process: targets load when pools sync
    from perfpipe.app.targets import configured_targets

    pools = {pool_name(name): f"perfpipe: k6 load on target {name!r}, one run at a time"
             for name in sorted(configured_targets())}
    pools[INLINE_POOL] = "perfpipe: k6 load on inline targets, one run at a time"
    return pools


def sync_pools() -> list[str]:
    """Create or update the pools (one slot each) in the Airflow metadata database."""
    from airflow.models.pool import Pool  # Airflow's ORM models only where the metadata database is written

    for name, description in wanted_pools().items():
        Pool.create_or_update_pool(name=name, slots=1, description=description, include_deferred=False)
    return sorted(wanted_pools())


if __name__ == "__main__":
    if sys.argv[1:] != ["sync"]:
        sys.exit("usage: python -m perfpipe.app.pools sync")
    print("\n".join(sync_pools()))
