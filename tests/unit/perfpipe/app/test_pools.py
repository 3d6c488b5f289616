"""Pool routing: only k6 tasks, by the run's target."""

from perfpipe.app.pools import INLINE_POOL, pool_for, wanted_pools


def test_k6_tasks_use_their_targets_pool():
    assert pool_for("run_k6", {"target": "demo"}) == "perf_target_demo"
    assert pool_for("load.run_k6", {"target": "demo"}) == "perf_target_demo"
    assert pool_for("run_k6", {}) == "perf_target_demo"  # a scheduled run loads the default target
    assert pool_for("run_k6", {"target": "demo", "inline_target": {"base_url": "http://127.0.0.1:1"}}) == INLINE_POOL


def test_other_tasks_keep_their_pool():
    for task_id in ("validate", "evaluate", "record", "load_gate", "run_k6_report", "report"):
        assert pool_for(task_id, {"target": "demo"}) is None


def test_one_pool_per_configured_target_plus_inline():
    assert set(wanted_pools()) == {"perf_target_demo", INLINE_POOL}
