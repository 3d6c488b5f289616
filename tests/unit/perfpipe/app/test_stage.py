"""perfpipe.app.stage: what a stage's tasks do with a plan, without Airflow, k6 or InfluxDB."""

from __future__ import annotations

import pytest

from perfpipe.app.stage import apply_script_requirements
from perfpipe.core.errors import InputError


def test_script_targets_are_held_to_the_vu_cap_and_timed_by_their_own_duration():
    plan = {"test_type": "smoke", "target": {"name": "t", "script": "/x.js", "max_vus": 10},
            "expected_duration_s": 1.0, "peak_vus": 1}
    apply_script_requirements(plan, {"maxVUs": 10, "totalDuration": "45s"})
    assert (plan["peak_vus"], plan["expected_duration_s"]) == (10, 45.0)
    with pytest.raises(InputError, match="11 VUs, above the target's cap of 10"):
        apply_script_requirements(plan, {"maxVUs": 11, "totalDuration": "45s"})
    with pytest.raises(InputError, match="longer than a smoke run may last"):
        apply_script_requirements(plan, {"maxVUs": 1, "totalDuration": "10h"})
