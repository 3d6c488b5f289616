"""perfpipe.core.paths: where config, scripts, reports and the chaos ledger live (environment first)."""

from __future__ import annotations

import pytest

from perfpipe.core import paths


@pytest.mark.parametrize("run_id", ["manual__2026-01-01T00:00:00+00:00", "a/b", "../../etc", "x\\y", "r id;rm"])
def test_a_run_id_is_one_path_component_under_the_reports_root(run_id, perfpipe_env):
    folder = paths.run_report_dir("perf_pipeline", run_id)
    root = perfpipe_env / "reports"
    assert folder.parent == root / "perf_pipeline"
    assert "/" not in paths.safe_component(run_id) and "\\" not in paths.safe_component(run_id)


def test_an_iso_run_id_stays_readable():
    assert paths.safe_component("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00_00_00+00_00"


@pytest.mark.xfail(strict=True, reason="safe_component keeps '.', so the run id '..' (valid for Airflow) names the "
                                       "parent folder: its report would land in the DAG's sibling folder")
def test_a_dot_dot_run_id_does_not_climb_out_of_its_dags_folder(perfpipe_env):
    folder = paths.run_report_dir("perf_pipeline", "..")
    assert folder.resolve().parent == (perfpipe_env / "reports" / "perf_pipeline").resolve()


def test_stage_folders_sit_inside_their_runs_folder():
    run = paths.run_report_dir("perf_pipeline", "r1")
    assert paths.stage_report_dir("perf_pipeline", "r1", "load") == run / "load"


def test_reports_root_comes_from_the_environment_else_from_perfpipe_yaml(monkeypatch, tmp_path):
    assert paths.reports_root() == tmp_path / "reports"  # PERFPIPE_REPORTS_DIR (set for every unit test)
    monkeypatch.delenv("PERFPIPE_REPORTS_DIR")
    config = tmp_path / "config"
    config.mkdir()
    (config / "perfpipe.yaml").write_text("reports_dir: elsewhere/out\n")
    monkeypatch.setenv("PERFPIPE_CONFIG_DIR", str(config))
    assert paths.reports_root() == paths.PROJECT_ROOT / "elsewhere" / "out"  # relative to the project


def test_config_and_scripts_dirs_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PERFPIPE_CONFIG_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("PERFPIPE_SCRIPTS_DIR", str(tmp_path / "s"))
    assert (paths.config_dir(), paths.scripts_dir()) == (tmp_path / "c", tmp_path / "s")
    monkeypatch.delenv("PERFPIPE_CONFIG_DIR")
    monkeypatch.delenv("PERFPIPE_SCRIPTS_DIR")
    assert (paths.config_dir(), paths.scripts_dir()) == (paths.PROJECT_ROOT / "config",
                                                         paths.PROJECT_ROOT / "k6-scripts")
    assert (paths.PROJECT_ROOT / "plugins" / "perfpipe" / "core" / "paths.py").is_file()  # the real project root


def test_the_chaos_ledger_follows_the_run_dir(monkeypatch, tmp_path):
    assert paths.chaos_ledger_dir() == paths.PROJECT_ROOT / "run" / "chaos"
    monkeypatch.setenv("PERFPIPE_RUN_DIR", str(tmp_path))
    assert paths.chaos_ledger_dir() == tmp_path / "chaos"
