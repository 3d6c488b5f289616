"""perfpipe.core.paths: where config, scripts and the chaos ledger live (environment first)."""

from __future__ import annotations

import pytest

from perfpipe.core import paths


def test_an_iso_run_id_stays_readable():
    assert paths.safe_component("manual__2026-01-01T00:00:00+00:00") == "manual__2026-01-01T00_00_00+00_00"


def test_a_dot_or_dot_dot_run_id_is_not_a_path_step():
    # Airflow allows the run id "..": as a folder name it would climb out of its DAG's folder.
    assert paths.safe_component("..") not in (".", "..") and paths.safe_component(".") not in (".", "..")
    assert paths.safe_component("a..b") == "a..b"


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
