"""perfpipe.entry.dag_factory: a test DAG's schedule is perfpipe.yaml's `schedules` entry (no DAG run, no DB)."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml

from perfpipe import TEST_TYPES
from perfpipe.app.config import read_config_yaml
from perfpipe.entry.dag_factory import build_test_dag


@pytest.fixture
def schedules(tmp_path, monkeypatch):
    """Write `schedules:` into a copy of the config dir and point perfpipe at it."""
    config = tmp_path / "config"
    shutil.copytree(os.environ["PERFPIPE_CONFIG_DIR"], config)

    def write(entries: dict) -> None:
        settings = read_config_yaml("perfpipe.yaml")
        settings["schedules"] = entries
        (config / "perfpipe.yaml").write_text(yaml.safe_dump(settings))
        monkeypatch.setenv("PERFPIPE_CONFIG_DIR", str(config))

    return write


def test_a_changed_schedule_reaches_the_dag(schedules):
    """Editing perfpipe.yaml is all it takes: a type gains, changes or loses its schedule."""
    schedules({"load": "*/7 * * * *", "spike": "30 4 * * 2"})  # smoke: no entry
    assert build_test_dag("load").schedule == "*/7 * * * *"
    assert build_test_dag("spike").schedule == "30 4 * * 2"
    assert build_test_dag("smoke").schedule is None


def test_without_schedules_every_test_dag_is_manual_and_never_catches_up(schedules):
    schedules({})
    for test_type in TEST_TYPES:
        dag = build_test_dag(test_type)
        assert (dag.dag_id, dag.schedule, dag.catchup) == (f"perf_{test_type}", None, False)
