"""perfpipe.core.hooks.influxdb_common: the settings and parallel queries, without Airflow."""

from __future__ import annotations

import subprocess
import sys
import threading
from types import SimpleNamespace

from perfpipe.core.hooks.influxdb_common import InfluxSettings, queries_in_parallel, settings_from_connection


def _conn(**fields):
    values = {"host": None, "port": None, "schema": None, "login": None, "password": None, "extra_dejson": {}}
    return SimpleNamespace(**{**values, **fields})


def test_influx_password_not_in_repr():
    assert "hunter2" not in repr(InfluxSettings(url="http://127.0.0.1:8086", database="k6", password="hunter2"))


def test_connection_defaults():
    assert settings_from_connection(_conn()) == InfluxSettings("http://127.0.0.1:8086", "k6")


class Recorder:
    """A hook stand-in that answers each query after all of them have started (so only a parallel run ends)."""

    parallel_safe = True

    def __init__(self, answers: dict, barrier: threading.Barrier | None = None):
        self.answers, self.barrier, self.executed = answers, barrier, []

    def copy(self):
        return self

    def query(self, query, params=None):
        if self.barrier is not None:
            self.barrier.wait(timeout=5)
        return self.answers[query]

    def execute(self, statement, params=None):
        self.executed.append(statement)


def test_queries_run_side_by_side_and_answer_in_order():
    hook = Recorder({"a": [{"v": 1}], "b": [{"v": 2}]}, threading.Barrier(2))
    assert queries_in_parallel(hook, ["b", "a"], {}) == [[{"v": 2}], [{"v": 1}]]


def test_a_hook_not_marked_parallel_safe_is_asked_one_query_at_a_time():
    hook = Recorder({"a": [{"v": 1}], "b": [{"v": 2}]})
    hook.parallel_safe = False
    hook.copy = lambda: (_ for _ in ()).throw(AssertionError("copied"))  # noqa: E731
    assert queries_in_parallel(hook, ["a", "b"], {}) == [[{"v": 1}], [{"v": 2}]]


def test_post_runs_statements_and_returns_no_points():
    hook = Recorder({})
    assert queries_in_parallel(hook, ["SELECT 1 INTO x", "SELECT 2 INTO y"], {}, method="POST") == [[], []]
    assert sorted(hook.executed) == ["SELECT 1 INTO x", "SELECT 2 INTO y"]


def test_importing_it_does_not_import_airflow():
    code = "import sys, perfpipe.core.hooks.influxdb_common; assert 'airflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
