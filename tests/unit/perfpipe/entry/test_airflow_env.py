"""perfpipe.entry.airflow_env.configure: the CLI's embedded Airflow lives in the project; set values win."""

from __future__ import annotations

import pytest

from perfpipe.entry import airflow_env

KEYS = ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER", "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__API__HOST")


@pytest.fixture
def bare_env(monkeypatch, tmp_path):
    """None of the keys set (each restored after the test), the project root in tmp_path."""
    for key in KEYS:
        monkeypatch.setenv(key, "x")  # recorded, so what configure() sets is undone afterwards
        monkeypatch.delenv(key)
    monkeypatch.setattr(airflow_env, "PROJECT_ROOT", tmp_path)
    return tmp_path


def test_defaults_put_airflow_under_the_project_on_loopback(bare_env):
    import os

    home = airflow_env.configure()
    assert home == bare_env / ".airflow" and home.is_dir()
    assert os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home / 'airflow.db'}"
    assert os.environ["AIRFLOW__CORE__DAGS_FOLDER"] == str(bare_env / "dags")
    assert os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert os.environ["AIRFLOW__API__HOST"] == "127.0.0.1"  # never listens beyond this machine by default


def test_values_already_in_the_environment_win(bare_env, monkeypatch):
    import os

    monkeypatch.setenv("AIRFLOW_HOME", str(bare_env / "mine"))
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://u@127.0.0.1/airflow")
    assert airflow_env.configure() == bare_env / "mine"
    assert os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql://u@127.0.0.1/airflow"
