"""perfpipe.app.pools: one pool per configured target (whatever targets.yaml holds), only k6 tasks routed."""

import shutil
from pathlib import Path

import pytest

from perfpipe.app.pools import INLINE_POOL, pool_for, wanted_pools


@pytest.fixture
def two_targets(tmp_path, monkeypatch):
    """A config dir of our own whose targets.yaml names 'zeta' and 'alpha' (not the repo's demo target)."""
    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[4] / "config", config)
    (config / "targets.yaml").write_text(
        "targets:\n"
        "  zeta: {base_url: 'http://127.0.0.1:9001', requests: [{path: /}]}\n"
        "  alpha: {base_url: 'http://127.0.0.1:9002', requests: [{path: /}]}\n")
    monkeypatch.setenv("PERFPIPE_CONFIG_DIR", str(config))


def test_k6_tasks_use_their_targets_pool(two_targets):
    assert pool_for("run_k6", {"target": "zeta"}) == "perf_target_zeta"
    assert pool_for("load.run_k6", {"target": "zeta"}) == "perf_target_zeta"  # a pipeline stage's k6 task
    assert pool_for("run_k6", {"target": "zeta", "inline_target": {"base_url": "http://127.0.0.1:1"}}) == INLINE_POOL


def test_a_run_without_a_target_uses_the_default_targets_pool(two_targets):
    """A scheduled run has no conf: it loads the first configured target by name, so it queues behind that one."""
    assert pool_for("run_k6", {}) == pool_for("run_k6", None) == "perf_target_alpha"


def test_other_tasks_keep_their_pool(two_targets):
    for task_id in ("validate", "evaluate", "record", "load_gate", "run_k6_report", "report", "run_k6.x"):
        assert pool_for(task_id, {"target": "zeta"}) is None


def test_one_pool_per_configured_target_plus_inline(two_targets):
    pools = wanted_pools()
    assert set(pools) == {"perf_target_alpha", "perf_target_zeta", INLINE_POOL}
    assert "'zeta'" in pools["perf_target_zeta"]  # the description names its target


def test_no_configured_target_leaves_only_the_inline_pool(tmp_path, monkeypatch, two_targets):
    (tmp_path / "config" / "targets.yaml").write_text("targets: {}\n")
    assert set(wanted_pools()) == {INLINE_POOL}
    assert pool_for("run_k6", {}) == INLINE_POOL


def test_a_runtime_target_at_a_configured_host_port_queues_in_that_targets_pool(two_targets, tmp_path):
    """The pool follows the host:port, not the name: an inline target or a file at zeta's address shares zeta's."""
    same = {"name": "copy", "base_url": "http://127.0.0.1:9001/", "requests": [{"path": "/x"}]}
    assert pool_for("run_k6", {"inline_target": same}) == "perf_target_zeta"
    target_file = tmp_path / "copy.yaml"
    target_file.write_text("base_url: http://127.0.0.1:9001\nrequests: [{path: /}]\n")
    assert pool_for("run_k6", {"target": str(target_file)}) == "perf_target_zeta"
    other_port = {**same, "base_url": "http://127.0.0.1:9003"}
    assert pool_for("run_k6", {"inline_target": other_port}) == INLINE_POOL


def test_configured_targets_at_one_host_port_share_one_pool(two_targets, tmp_path):
    (tmp_path / "config" / "targets.yaml").write_text(
        "targets:\n"
        "  zeta: {base_url: 'http://127.0.0.1:9001', requests: [{path: /}]}\n"
        "  beta: {base_url: 'http://127.0.0.1:9001/api', requests: [{path: /}]}\n")
    assert pool_for("run_k6", {"target": "zeta"}) == pool_for("run_k6", {"target": "beta"}) == "perf_target_beta"


def test_a_bad_runtime_target_is_left_to_validate(two_targets):
    assert pool_for("run_k6", {"inline_target": {"base_url": "ftp://nowhere"}}) == INLINE_POOL
