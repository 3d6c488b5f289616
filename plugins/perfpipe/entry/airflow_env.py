"""The embedded local Airflow the CLI runs DAGs in: SQLite under .airflow/, this project's dags and plugins.

Must run before anything imports airflow; values already in the environment win.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
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


DB_STAMP = "perfpipe-db.json"


def ensure_db() -> None:
    """Create or upgrade the metadata database and the per-target pools (idempotent).

    `airflow db migrate` costs ~2 s per run even when there is nothing to do (alembic loads every migration):
    a local SQLite database this Airflow version already migrated (stamp: version, URL and the alembic revision
    it left, checked against the database itself) is not migrated again."""
    from airflow.utils import db  # after configure(): Airflow reads its settings when first imported

    from perfpipe.app.pools import sync_pools  # after configure(): perfpipe.app.pools imports Airflow's models

    if not _db_current():
        db.initdb()
        _write_stamp()
    sync_pools()


def _sqlite_path() -> Path | None:
    conn = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    return Path(conn[len("sqlite:///"):]) if conn.startswith("sqlite:///") else None


def _db_revision(path: Path) -> str | None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return None
    return ",".join(sorted(r[0] for r in rows)) or None


def _stamp_wanted(path: Path) -> dict[str, str]:
    import airflow  # after configure(): Airflow reads its settings when first imported

    return {"airflow": airflow.__version__, "database": str(path)}


def _db_current() -> bool:
    path = _sqlite_path()
    if path is None or not path.is_file():
        return False
    try:
        stamp = json.loads((path.parent / DB_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    revision = _db_revision(path)
    return revision is not None and stamp == {**_stamp_wanted(path), "revision": revision}


def _write_stamp() -> None:
    path = _sqlite_path()
    revision = _db_revision(path) if path is not None and path.is_file() else None
    if revision is None:
        return
    (path.parent / DB_STAMP).write_text(json.dumps({**_stamp_wanted(path), "revision": revision}),
                                        encoding="utf-8")
