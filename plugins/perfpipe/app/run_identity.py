"""Who a run is and when it may be: the run id the CLI gives a run, and the logical dates a run can have.

A run id names the attempt, not only the date: `manual__<logical date>__<target>__<home tag>.<nonce>`. Results are
keyed by (dag, target, test type, logical date), so two targets or two checkouts sharing one InfluxDB never touch
each other's points, and a rerun of the same key writes its own point under its own run id before the earlier
one is dropped (perfpipe.app.results.store_result): an attempt that dies before recording leaves the earlier
verdict in place. The home tag is a digest of the AIRFLOW_HOME that started the run, so `perfpipe stop` can tell a
run of its own checkout from another's.

A logical date is refused when no test could run at it: before the DAGs' start_date Airflow creates the run and
marks it success without running a task; outside InfluxDB's int64-nanosecond range no result can be stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from perfpipe.core.errors import InputError

# Every perf DAG's start_date (perfpipe.entry.dag_factory): one value, so pre-flight refuses what Airflow would skip.
DAG_START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
# InfluxDB 1.x stores times as int64 nanoseconds since the epoch (models.MinNanoTime/MaxNanoTime), to whole seconds.
INFLUX_MIN_TIME = datetime(1677, 9, 21, 0, 12, 44, tzinfo=timezone.utc)
INFLUX_MAX_TIME = datetime(2262, 4, 11, 23, 47, 16, tzinfo=timezone.utc)

# Airflow accepts run ids of [A-Za-z0-9_.~:+-] ([scheduler] allowed_run_id_pattern); a target name is cut to that.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
TARGET_PART_MAX = 64
_HOME_NONCE = re.compile(r"__(h[0-9a-f]{8})\.[0-9a-f]{6}$")


def check_logical_date(value: datetime) -> None:
    """Refuse a logical date no test can run at (InputError naming `logical_date`)."""
    if value.tzinfo is None:
        raise InputError("logical_date", f"{value.isoformat()} has no time zone")
    if value < DAG_START_DATE:
        raise InputError("logical_date", f"{value.isoformat()} is before the perf DAGs' start_date "
                         f"{DAG_START_DATE.isoformat()}: Airflow would create a run that runs no test")
    if value > INFLUX_MAX_TIME:
        raise InputError("logical_date", f"{value.isoformat()} is after {INFLUX_MAX_TIME.isoformat()}, the last "
                         f"time InfluxDB can store: its result could not be recorded")


def home_tag(home: str | Path) -> str:
    """A short, stable tag of the Airflow home (one per checkout) that starts a run."""
    return "h" + hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:8]


def target_name_of(params: dict[str, Any]) -> str:
    """The name a run's results are recorded under: the configured target's, or the inline target's."""
    return str(params.get("target") or (params.get("inline_target") or {}).get("name") or "target")


def run_id_for(logical_date: datetime, target: str, home: str, nonce: str | None = None) -> str:
    """The run id of one attempt (see the module doc); `nonce` only for tests."""
    if logical_date.tzinfo is None:
        raise ValueError("a logical date must be timezone-aware")
    safe_target = _UNSAFE.sub("-", target)[:TARGET_PART_MAX] or "target"
    return f"manual__{logical_date.isoformat()}__{safe_target}__{home}.{nonce or secrets.token_hex(3)}"


def home_of_run_id(run_id: str) -> str | None:
    """The home tag a run id of run_id_for carries; None for other run ids (Airflow's own, older ones)."""
    match = _HOME_NONCE.search(run_id)
    return match.group(1) if match else None
