"""perfpipe.core.k6.command's run config as the bundled k6 scripts read it: k6-scripts/lib/compile.js compiles it
without validating it (the Python plan was validated before any load), and keeps one guard, the config's `schema`
and `test_type`. Checked with the real k6 binary's `k6 inspect` (init context only: no request is sent)."""

from __future__ import annotations

import json
import re

import pytest

from perfpipe import TEST_TYPES
from perfpipe.app.config import build_plan
from perfpipe.core.errors import InputError
from perfpipe.core.k6.command import RUN_CONFIG_SCHEMA, k6_binary, run_config, write_run_config
from perfpipe.core.k6.runner import clear_inspect_cache, validate_script
from perfpipe.core.paths import scripts_dir


@pytest.fixture(autouse=True)
def fresh_inspect_cache():
    clear_inspect_cache()
    yield
    clear_inspect_cache()


def k6_message(error: InputError) -> str:
    """The refusal as k6 logged it, with the quotes k6's log line escapes unescaped."""
    return str(error).replace('\\"', '"')


def inspect(test_type: str, config_path, headers: str = "{}") -> dict:
    env = {"PERFPIPE_RUN_CONFIG": str(config_path), "PERFPIPE_TARGET_HEADERS": headers,
           "BASE_URL": "http://127.0.0.1:8090"}
    return validate_script(k6_binary(), str(scripts_dir() / f"{test_type}.js"), env)


def written(api_target, test_type: str, tmp_path) -> dict:
    path = write_run_config(build_plan(test_type, api_target, "quick"), tmp_path)
    return json.loads(path.read_text())


def test_run_config_names_its_schema(api_target):
    assert run_config(build_plan("load", api_target, "quick"))["schema"] == RUN_CONFIG_SCHEMA


def test_compile_js_checks_the_same_schema():
    source = (scripts_dir() / "lib" / "compile.js").read_text()
    assert re.findall(r"RUN_CONFIG_SCHEMA = '([^']*)'", source) == [RUN_CONFIG_SCHEMA]


@pytest.mark.parametrize("test_type", TEST_TYPES)
def test_every_script_compiles_the_config_python_writes(api_target, test_type, tmp_path):
    path = write_run_config(build_plan(test_type, api_target, "quick"), tmp_path)
    requirements = inspect(test_type, path)
    assert requirements["maxVUs"] >= 1 and requirements["totalDuration"]


@pytest.mark.parametrize("schema, shown", [(None, 'has no "schema"'), ("perfpipe-run-config/0",
                                                                       'has schema "perfpipe-run-config/0"'),
                                           (1, "has schema 1")])
def test_a_hand_written_or_stale_config_is_refused_by_its_schema(api_target, tmp_path, schema, shown):
    config = written(api_target, "load", tmp_path)
    if schema is None:
        del config["schema"]  # what every run config looked like before the scripts stopped validating
    else:
        config["schema"] = schema
    path = tmp_path / "hand-written.json"
    path.write_text(json.dumps(config))
    with pytest.raises(InputError) as exc:
        inspect("load", path)
    message = k6_message(exc.value)
    assert "exit 107" in message and shown in message and f'not "{RUN_CONFIG_SCHEMA}"' in message
    assert "do not validate their run config" in message


def test_a_config_for_another_test_type_is_refused(api_target, tmp_path):
    path = write_run_config(build_plan("smoke", api_target, "quick"), tmp_path)
    with pytest.raises(InputError) as exc:
        inspect("load", path)
    assert 'is for test type "smoke" but this script is load.js' in k6_message(exc.value)


@pytest.mark.parametrize("text", ["not json", "[]", "null", "7"])
def test_a_config_that_is_no_json_object_is_refused(tmp_path, text):
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(InputError, match="exit 107"):
        inspect("smoke", path)


def test_headers_that_are_no_json_are_refused_without_showing_them(api_target, tmp_path):
    path = write_run_config(build_plan("smoke", api_target, "quick"), tmp_path)
    with pytest.raises(InputError) as exc:
        inspect("smoke", path, headers='{"Authorization": Bearer tok-unit-secret}')
    assert "PERFPIPE_TARGET_HEADERS is not valid JSON" in str(exc.value)
    assert "tok-unit-secret" not in str(exc.value) and "Bearer" not in str(exc.value)
