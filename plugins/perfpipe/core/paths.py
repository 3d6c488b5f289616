"""Where perfpipe finds its config, scripts and chaos ledger (report folders: perfpipe.app.report_paths)."""

from __future__ import annotations

import os
from pathlib import Path

# plugins/perfpipe/core/paths.py: the project root is the folder above plugins/.
PROJECT_ROOT = Path(os.environ.get("PERFPIPE_HOME", Path(__file__).resolve().parents[3]))


def config_dir() -> Path:
    return Path(os.environ.get("PERFPIPE_CONFIG_DIR", PROJECT_ROOT / "config"))


def scripts_dir() -> Path:
    return Path(os.environ.get("PERFPIPE_SCRIPTS_DIR", PROJECT_ROOT / "k6-scripts"))


def safe_component(value: str) -> str:
    """A run id like 'manual__2026-01-01T00:00:00+00:00' as one safe path component."""
    safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in value)
    # "." and ".." (valid Airflow run ids) would name this folder or its parent.
    return safe if safe.strip(".") else safe.replace(".", "_") or "_"


def chaos_ledger_dir() -> Path:
    """Ledger of injected chaos faults: $PERFPIPE_RUN_DIR/chaos, else <repo>/run/chaos (the scripts' run dir)."""
    run_dir = os.environ.get("PERFPIPE_RUN_DIR")
    return Path(run_dir) / "chaos" if run_dir else PROJECT_ROOT / "run" / "chaos"
