"""One Airflow pool per target, one slot: no two load-generating tasks ever hit the same target at once.

The pool of a k6 task depends on the run's target, a Param, so it is set when the task instance is created, by
the `task_instance_mutation_hook` in plugins/airflow_local_settings.py (Airflow's hook for routing by
dag_run.conf). Pools must exist before tasks use them: `python -m perfpipe.app.pools sync` (the CLI does it for its
embedded Airflow) creates one per configured target plus one shared by all inline targets.

A pool belongs to a host:port, not to a name (perfpipe.app.targets.same_host_targets): configured targets at one
host:port share the pool of the first of them (sorted names), and a run-time target (inline or a file) at a
configured target's host:port queues in that pool too; any other run-time target uses the inline pool.
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
    """The configured target whose pool a run's load queues in: the first configured target at the host:port of
    the run's target (inline, a file or a name, from the run's conf or the default); None when there is none."""
    # the cluster policy imports this module in every Airflow process: targets load when a run is routed
    from perfpipe.app.targets import configured_targets, resolve_target, same_host_targets
    from perfpipe.core.errors import PerfpipeError

    conf = conf or {}
    spec = conf.get("inline_target") or conf.get("target") or (sorted(configured_targets()) or [None])[0]
    if not spec:
        return None
    try:
        # Only the URL matters here, and the run's validate task checks the rest: a file is read, nothing resolved
        configured = configured_targets()
        if isinstance(spec, dict):
            url = spec.get("base_url")
        elif spec in configured and isinstance(configured[spec], dict):
            url = configured[spec].get("base_url")
        else:
            url = resolve_target(spec)["base_url"]
        return (same_host_targets(url) or [None])[0] if isinstance(url, str) else None
    except (PerfpipeError, OSError, ValueError, TypeError):  # bad input: refused by validate, before any load
        return None


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
