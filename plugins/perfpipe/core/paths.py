"""Where perfpipe finds its config, scripts and report folders."""

from __future__ import annotations

import os
from pathlib import Path

# plugins/perfpipe/core/paths.py: the project root is the folder above plugins/.
PROJECT_ROOT = Path(os.environ.get("PERFPIPE_HOME", Path(__file__).resolve().parents[3]))


def config_dir() -> Path:
    return Path(os.environ.get("PERFPIPE_CONFIG_DIR", PROJECT_ROOT / "config"))


def scripts_dir() -> Path:
    return Path(os.environ.get("PERFPIPE_SCRIPTS_DIR", PROJECT_ROOT / "k6-scripts"))


def reports_root() -> Path:
    """PERFPIPE_REPORTS_DIR, else `reports_dir` of config/perfpipe.yaml (relative to the project)."""
    configured = os.environ.get("PERFPIPE_REPORTS_DIR")
    if configured:
        return Path(configured)
    from perfpipe.app.config import settings  # late: config imports this module

    return PROJECT_ROOT / settings().get("reports_dir", "reports")


def run_report_dir(dag_id: str, run_id: str) -> Path:
    return reports_root() / safe_component(dag_id) / safe_component(run_id)


def safe_component(value: str) -> str:
    """A run id like 'manual__2026-01-01T00:00:00+00:00' as one safe path component."""
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in value)


def stage_report_dir(dag_id: str, run_id: str, test_type: str) -> Path:
    return run_report_dir(dag_id, run_id) / test_type


def chaos_ledger_dir() -> Path:
    """Ledger of injected chaos faults: $PERFPIPE_RUN_DIR/chaos, else <repo>/run/chaos (the scripts' run dir)."""
    run_dir = os.environ.get("PERFPIPE_RUN_DIR")
    return Path(run_dir) / "chaos" if run_dir else PROJECT_ROOT / "run" / "chaos"
