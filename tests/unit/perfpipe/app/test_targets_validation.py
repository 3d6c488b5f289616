"""Refusals and isolation added after review: each names its field or keeps something out."""

from __future__ import annotations

import pytest

from perfpipe.app.config import apply_overrides
from perfpipe.core.errors import InputError
from perfpipe.core.hooks.influxdb import InfluxSettings
from perfpipe.core.k6.command import base_env
from perfpipe.app.stage import apply_script_requirements
from perfpipe.app.targets import validate_target


def test_credentials_in_base_url_are_refused():
    with pytest.raises(InputError) as exc:
        validate_target({"base_url": "http://user:secret@127.0.0.1:8090", "requests": [{"path": "/"}]}, "t", "t")
    assert exc.value.field == "t.base_url" and "secret" not in str(exc.value)


def test_target_gates_are_validated_with_their_field():
    with pytest.raises(InputError) as exc:
        validate_target({"base_url": "http://127.0.0.1:1", "requests": [{"path": "/"}],
                         "gates": {"load": {"p95_ms": {"op": "~", "threshold": 1}}}}, "t", "targets.t")
    assert exc.value.field == "targets.t.gates.load.p95_ms.op"
    with pytest.raises(InputError) as exc:
        validate_target({"base_url": "http://127.0.0.1:1", "requests": [{"path": "/"}],
                         "gates": {"lod": {}}}, "t", "targets.t")
    assert exc.value.field == "targets.t.gates.lod"


@pytest.mark.parametrize("stages", [[{"duration": "10s"}], [{"duration": "10s", "target": "x"}], 5])
def test_scaling_malformed_stages_names_the_field(stages):
    with pytest.raises(InputError) as exc:
        apply_overrides("load", {"executor": "ramping-vus", "stages": [{"duration": "5s", "target": 5}]}, {},
                        {"stages": stages, "vus": 10})
    assert exc.value.field == "overrides.vus"


def test_stages_apply_before_vus_whatever_the_order():
    for overrides in ({"vus": 20, "stages": "5s:10,5s:5"}, {"stages": "5s:10,5s:5", "vus": 20}):
        shape = {"executor": "ramping-vus", "stages": [{"duration": "1s", "target": 1}]}
        apply_overrides("load", shape, {}, overrides)
        assert [s["target"] for s in shape["stages"]] == [20, 10]


def test_k6_inherits_no_proxy_and_no_secret(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:3128")
    monkeypatch.setenv("PERFPIPE_INFLUXDB_PASSWORD", "hunter2")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://u:pw@db/airflow")
    env = base_env()
    assert env["K6_NO_USAGE_REPORT"] == "true" and "PATH" in env
    assert not {"HTTPS_PROXY", "http_proxy", "PERFPIPE_INFLUXDB_PASSWORD", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"} & set(env)


def test_influx_password_not_in_repr():
    assert "hunter2" not in repr(InfluxSettings(url="http://127.0.0.1:8086", database="k6", password="hunter2"))


def test_script_targets_are_held_to_the_vu_cap_and_timed_by_their_own_duration():
    plan = {"test_type": "smoke", "target": {"name": "t", "script": "/x.js", "max_vus": 10},
            "expected_duration_s": 1.0, "peak_vus": 1}
    apply_script_requirements(plan, {"maxVUs": 10, "totalDuration": "45s"})
    assert (plan["peak_vus"], plan["expected_duration_s"]) == (10, 45.0)
    with pytest.raises(InputError, match="11 VUs, above the target's cap of 10"):
        apply_script_requirements(plan, {"maxVUs": 11, "totalDuration": "45s"})
    with pytest.raises(InputError, match="longer than a smoke run may last"):
        apply_script_requirements(plan, {"maxVUs": 1, "totalDuration": "10h"})
