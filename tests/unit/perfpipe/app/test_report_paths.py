"""perfpipe.app.report_paths: a run's report folder (PERFPIPE_REPORTS_DIR, else perfpipe.yaml's reports_dir)."""

from __future__ import annotations

import pytest

from perfpipe.app import report_paths
from perfpipe.core.paths import PROJECT_ROOT, safe_component


@pytest.mark.parametrize("run_id", ["manual__2026-01-01T00:00:00+00:00", "a/b", "../../etc", "x\\y", "r id;rm"])
def test_a_run_id_is_one_path_component_under_the_reports_root(run_id, perfpipe_env):
    folder = report_paths.run_report_dir("perf_pipeline", run_id)
    root = perfpipe_env / "reports"
    assert folder.parent == root / "perf_pipeline"
    assert "/" not in safe_component(run_id) and "\\" not in safe_component(run_id)


def test_a_dot_dot_run_id_does_not_climb_out_of_its_dags_folder(perfpipe_env):
    folder = report_paths.run_report_dir("perf_pipeline", "..")
    assert folder.resolve().parent == (perfpipe_env / "reports" / "perf_pipeline").resolve()


def test_stage_folders_sit_inside_their_runs_folder():
    run = report_paths.run_report_dir("perf_pipeline", "r1")
    assert report_paths.stage_report_dir("perf_pipeline", "r1", "load") == run / "load"


def test_reports_root_comes_from_the_environment_else_from_perfpipe_yaml(monkeypatch, tmp_path):
    assert report_paths.reports_root() == tmp_path / "reports"  # PERFPIPE_REPORTS_DIR (set for every unit test)
    monkeypatch.delenv("PERFPIPE_REPORTS_DIR")
    config = tmp_path / "config"
    config.mkdir()
    (config / "perfpipe.yaml").write_text("reports_dir: elsewhere/out\n")
    monkeypatch.setenv("PERFPIPE_CONFIG_DIR", str(config))
    assert report_paths.reports_root() == PROJECT_ROOT / "elsewhere" / "out"  # relative to the project
