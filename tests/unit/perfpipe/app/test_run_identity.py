"""perfpipe.app.run_identity: run ids unique per target, checkout and attempt; logical dates no test can run at."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from perfpipe.app.run_identity import (DAG_START_DATE, INFLUX_MAX_TIME, check_logical_date, home_of_run_id, home_tag,
                                       run_id_for, target_name_of)
from perfpipe.core.errors import InputError

DATE = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value, reason", [
    (datetime(2001, 1, 1, tzinfo=timezone.utc), "before the perf DAGs' start_date"),
    (DAG_START_DATE - timedelta(seconds=1), "before the perf DAGs' start_date"),
    (datetime(2300, 1, 1, tzinfo=timezone.utc), "the last time InfluxDB can store"),
    (datetime(2026, 3, 1), "no time zone"),
])
def test_a_date_no_test_can_run_at_is_refused_naming_the_field(value, reason):
    with pytest.raises(InputError, match=r"^logical_date: ") as refused:
        check_logical_date(value)
    assert reason in str(refused.value)


@pytest.mark.parametrize("value", [DAG_START_DATE, DATE, INFLUX_MAX_TIME])
def test_dates_a_test_can_run_at_pass(value):
    check_logical_date(value)


def test_run_ids_differ_by_target_checkout_and_attempt_and_airflow_accepts_them():
    from airflow.configuration import conf

    home_a, home_b = home_tag("/work/a/.airflow"), home_tag("/work/b/.airflow")
    ids = {run_id_for(DATE, "demo", home_a), run_id_for(DATE, "demo", home_a), run_id_for(DATE, "other", home_a),
           run_id_for(DATE, "demo", home_b)}
    assert len(ids) == 4
    pattern = conf.get("scheduler", "allowed_run_id_pattern")
    assert all(re.match(pattern, run_id) for run_id in ids)
    assert run_id_for(DATE, "demo", home_a, nonce="abc123") == \
        f"manual__2026-03-01T12:00:00+00:00__demo__{home_a}.abc123"


def test_a_run_id_names_its_home_and_a_target_name_is_cut_to_what_airflow_accepts():
    home = home_tag("/srv/checkout/.airflow")
    run_id = run_id_for(DATE, "shop api/v2 ✓" + "x" * 100, home)
    assert home_of_run_id(run_id) == home
    target_part = run_id.split("__")[2]
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", target_part) and target_part.startswith("shop-api-v2-")
    assert home_of_run_id("manual__2026-03-01T12:00:00+00:00") is None  # Airflow's own ids carry no home
    assert home_tag("/srv/checkout/.airflow") == home != home_tag("/srv/other/.airflow")


def test_the_target_name_is_the_configured_or_the_inline_targets():
    assert target_name_of({"target": "demo"}) == "demo"
    assert target_name_of({"target": "demo", "inline_target": {"name": "file-target"}}) == "demo"
    assert target_name_of({"inline_target": {"name": "file-target"}}) == "file-target"
