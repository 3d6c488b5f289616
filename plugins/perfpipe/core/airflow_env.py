"""The embedded local Airflow the CLI runs DAGs in: SQLite under .airflow/, this project's dags and plugins.

Must run before anything imports airflow; values already in the environment win.
"""

from __future__ import annotations

import os
from pathlib import Path

from perfpipe.core.paths import PROJECT_ROOT


def configure() -> Path:
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(PROJECT_ROOT / ".airflow")))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PROJECT_ROOT / "plugins"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__API__HOST", "127.0.0.1")
    return home


def ensure_db() -> None:
    """Create or upgrade the metadata database and the per-target pools (idempotent)."""
    from airflow.utils import db

    from perfpipe.app.pools import sync_pools

    db.initdb()
    sync_pools()
