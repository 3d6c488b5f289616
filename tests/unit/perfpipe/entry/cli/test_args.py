"""perfpipe.entry.cli.args: the parser, a run's arguments as the DAG's Params, and the logical date."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from perfpipe.core.errors import InputError
from perfpipe.entry.cli.args import build_parser, params_from_args, parse_logical_date
from perfpipe.entry.cli.output import CliError


def _args(*argv: str):
    return build_parser().parse_args(list(argv))


def test_a_configured_target_is_passed_by_name_and_a_file_inline(tmp_path):
    assert params_from_args(_args("run", "smoke", "--target", "demo"))["target"] == "demo"
    path = tmp_path / "mine.yaml"
    path.write_text("base_url: http://127.0.0.1:9000\nrequests: [{path: /}]\n")
    params = params_from_args(_args("run", "smoke", "--target", str(path), "--set", "vus=3"))
    assert "target" not in params and params["inline_target"]["base_url"] == "http://127.0.0.1:9000"
    assert params["overrides"] == {"vus": 3}


def test_set_values_are_yaml_scalars_and_lists_and_later_pairs_win():
    params = params_from_args(_args("run", "load", "--target", "demo", "--set", "duration=30s", "--set",
                                    "thresholds.p95_ms=<300", "--set", "read_ratio=0.5", "--set", "vus=2",
                                    "--set", "vus=4", "--set", "stages=[1, 2]", "--set", "load.vus="))
    assert params["overrides"] == {"duration": "30s", "thresholds.p95_ms": "<300", "read_ratio": 0.5, "vus": 4,
                                   "stages": [1, 2], "load.vus": ""}


def test_a_set_without_a_key_or_equals_sign_is_refused_naming_the_flag():
    for bad in ("vus", "=3"):
        with pytest.raises(InputError, match="--set"):
            params_from_args(_args("run", "smoke", "--target", "demo", "--set", bad))


def test_a_scenario_is_refused_for_a_test_that_injects_no_fault():
    with pytest.raises(CliError, match="--scenario"):
        params_from_args(_args("run", "load", "--target", "demo", "--scenario", "cache_failure"))
    params = params_from_args(_args("run", "pipeline", "--target", "demo", "--include-soak"))
    assert params["include_soak"] is True and "chaos_scenario" in params  # always set: dag.test() keeps old values
    assert params_from_args(_args("run", "chaos", "--target", "demo", "--scenario", "db_failure"))[
        "chaos_scenario"] == "db_failure"
    assert "include_soak" not in params_from_args(_args("run", "chaos", "--target", "demo"))


def test_logical_dates_are_utc_unless_they_say_otherwise():
    assert parse_logical_date("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
    assert parse_logical_date("2026-03-01T10:00:00+02:00").utcoffset() == timedelta(hours=2)
    now = parse_logical_date(None)
    assert now.tzinfo is not None and now.microsecond == 0
    with pytest.raises(CliError, match="--logical-date"):
        parse_logical_date("yesterday")


def test_the_parser_refuses_unknown_test_types_and_profiles(capsys):
    for argv in (["run", "nope", "--target", "demo"], ["run", "smoke", "--target", "demo", "--profile", "x"],
                 ["run", "smoke"]):
        with pytest.raises(SystemExit) as exited:
            _args(*argv)
        assert exited.value.code == 2
    assert _args("stop", "r1").dag_id == "perf_pipeline" and _args("stop", "r1").airflow_url is None


CHAOS_FILES = [  # (id, the file's chaos block as YAML, field after '<file>.chaos.')
    ("pid_command", "{components: {c: {kind: process, pid_command: [touch, MARKER], start_command: [true]}}, "
                    "scenarios: {s: {component: c, action: stop}}, default_scenario: s}", "components.c.pid_command"),
    ("start_command", "{components: {c: {kind: process, start_command: [touch, MARKER]}}}",
     "components.c.start_command"),
    ("stop_command", "{components: {c: {kind: process, stop_command: [touch, MARKER]}}}", "components.c.stop_command"),
    ("control_url", "{components: {l: {kind: proxy, control_url: 'http://127.0.0.1:8091'}}}",
     "components.l.control_url"),
    ("nested", "{components: {c: {kind: process, more: {pid_command: [touch, MARKER]}}}}",
     "components.c.more.pid_command"),
]


@pytest.mark.parametrize("chaos, where", [c[1:] for c in CHAOS_FILES], ids=[c[0] for c in CHAOS_FILES])
def test_a_target_file_with_chaos_components_is_refused_naming_the_field(tmp_path, chaos, where):
    path = tmp_path / "x.yaml"
    marker = tmp_path / "marker"
    path.write_text(f"base_url: http://127.0.0.1:9000\nrequests: [{{path: /}}]\n"
                    f"chaos: {chaos.replace('MARKER', str(marker))}\n")
    with pytest.raises(InputError) as exc:
        params_from_args(_args("run", "chaos", "--target", str(path)))
    assert exc.value.field == f"{path}.chaos.{where}"
    assert "config/targets.yaml of the deployment" in str(exc.value)
    assert not marker.exists()


def test_a_configured_target_with_chaos_is_passed_by_name():
    params = params_from_args(_args("run", "chaos", "--target", "demo", "--scenario", "cache_failure"))
    assert params["target"] == "demo" and "inline_target" not in params


def test_a_logical_date_no_test_can_run_at_is_refused_naming_the_field():
    with pytest.raises(CliError, match=r"^logical_date: 2001-01-01T00:00:00\+00:00 is before the perf DAGs' start"):
        parse_logical_date("2001-01-01")
    with pytest.raises(CliError, match=r"^logical_date: .* the last time InfluxDB can store"):
        parse_logical_date("3000-01-01T00:00:00+00:00")
