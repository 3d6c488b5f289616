"""Where a run's reports go: PERFPIPE_REPORTS_DIR, else `reports_dir` of config/perfpipe.yaml.

Here, not in perfpipe.core.paths: the folder is a setting, and core does not read the application's settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from perfpipe.app.config import settings
from perfpipe.core.paths import PROJECT_ROOT, safe_component


def reports_root() -> Path:
    """PERFPIPE_REPORTS_DIR, else `reports_dir` of config/perfpipe.yaml (relative to the project)."""
    configured = os.environ.get("PERFPIPE_REPORTS_DIR")
    if configured:
        return Path(configured)
    return PROJECT_ROOT / settings().get("reports_dir", "reports")


def run_report_dir(dag_id: str, run_id: str) -> Path:
    return reports_root() / safe_component(dag_id) / safe_component(run_id)


def stage_report_dir(dag_id: str, run_id: str, test_type: str) -> Path:
    return run_report_dir(dag_id, run_id) / test_type
